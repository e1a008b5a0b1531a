"""Spec `history:` -> the JetStream stream of the federation's task events on the seeds.

`ensure_stream(spec)` creates the stream, or updates its limits to the spec's, as the
`seedctl-history` user of the federation account (seed.users.HISTORY_MANAGER: it may create,
update and inspect that one stream, nothing else). `seedctl up` and `seedctl reload` call it.
Only task subjects are kept (presence and stats are live-only); discard old; file storage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from monitor_agent.protocol import history_stream, history_subject

from .spec import Spec
from .users import HISTORY_MANAGER, history_manager, user_password


class HistoryError(Exception):
    """The history stream could not be created or updated; the message says why."""


@dataclass(frozen=True, slots=True)
class StreamState:
    name: str
    created: bool
    replicas: int
    messages: int
    bytes: int


def stream_config(spec: Spec):
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    h = spec.history
    assert h is not None
    return StreamConfig(
        name=history_stream(spec.subject_prefix),
        description=f"signed, anonymized task events of federation {spec.name} (seed spec history:)",
        subjects=[history_subject(spec.subject_prefix)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=float(h.max_age_s),
        max_bytes=h.max_bytes,
        num_replicas=h.replicas,
    )


async def _ensure(spec: Spec, timeout: float) -> StreamState:
    import nats
    from nats.errors import Error as NatsError
    from nats.js.errors import APIError, NotFoundError

    from .health.sysreq import _tls_context

    user = history_manager(spec)
    assert user is not None
    opts: dict[str, Any] = {
        "servers": spec.client_urls,
        "name": HISTORY_MANAGER,
        "user": user.name,
        "password": user_password(spec, user),
        "connect_timeout": min(timeout, 5.0),
        "allow_reconnect": False,
        "max_reconnect_attempts": 0,
    }
    if spec.tls is not None:
        opts["tls"] = _tls_context(str(spec.tls.cert))

    async def quiet(_exc):
        return None

    try:
        nc = await nats.connect(error_cb=quiet, **opts)
    except (TimeoutError, NatsError, OSError) as exc:
        raise HistoryError(f"cannot connect to any seed as {HISTORY_MANAGER}: {exc or type(exc).__name__}") from None
    try:
        js = nc.jetstream(timeout=min(timeout, 5.0))
        config = stream_config(spec)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:  # a fresh cluster elects its JetStream leader first
            try:
                try:
                    await js.stream_info(config.name)
                    info = await js.update_stream(config)
                    created = False
                except NotFoundError:
                    info = await js.add_stream(config)
                    created = True
                return StreamState(
                    name=config.name,
                    created=created,
                    replicas=info.config.num_replicas or 1,
                    messages=info.state.messages,
                    bytes=info.state.bytes,
                )
            except (APIError, TimeoutError, NatsError) as exc:
                last = exc
                await asyncio.sleep(0.5)
        raise HistoryError(f"history stream {config.name}: not created within {timeout:.0f}s: {last}")
    finally:
        await nc.close()


def ensure_stream(spec: Spec, timeout: float = 30.0) -> StreamState | None:
    """Create or update the history stream (None without `history:` in the spec)."""
    if spec.history is None:
        return None
    return asyncio.run(_ensure(spec, timeout))


def describe(state: StreamState, spec: Spec) -> str:
    h = spec.history
    assert h is not None
    verb = "created" if state.created else "updated"
    return (
        f"history: stream {state.name} {verb} (task events only, max_age {h.max_age_s}s, "
        f"max_bytes {h.max_bytes}, replicas {state.replicas}; {state.messages} events stored)"
    )
