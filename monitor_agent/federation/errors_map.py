"""Map nats-py / network failures onto PROTOCOL.md §5 codes (pure)."""

from __future__ import annotations

import asyncio
import ssl

from nats import errors as nats_errors

from ..protocol import FedCode


def classify(exc: BaseException) -> FedCode:
    """The FED code an exception raised or reported by nats-py stands for."""
    text = str(exc).lower()
    if isinstance(exc, ssl.SSLError | ssl.CertificateError) or "certificate" in text or "ssl" in text:
        return FedCode.TLS_ERROR
    if isinstance(exc, nats_errors.AuthorizationError) or "authorization violation" in text:
        return FedCode.AUTH_FAILED
    if "authentication" in text or "user authentication" in text:
        return FedCode.AUTH_FAILED
    if "permissions violation" in text:
        return FedCode.SUBSCRIPTION_FAILED
    if isinstance(
        exc, asyncio.TimeoutError | TimeoutError | nats_errors.TimeoutError | nats_errors.FlushTimeoutError
    ):
        return FedCode.NETWORK_TIMEOUT
    if isinstance(exc, nats_errors.SlowConsumerError):
        return FedCode.RATE_LIMITED
    return FedCode.SEED_UNAVAILABLE


def describe(exc: BaseException) -> str:
    """A short operator-readable line for an exception (never includes credentials)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError | nats_errors.NoServersError):
        return "no seed server accepted the connection (connection refused)"
    return f"{type(exc).__name__}: {text}"[:300]
