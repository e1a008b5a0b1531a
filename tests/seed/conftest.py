"""Helpers for the seed tests: a nats-py client that records the server's async errors."""

from __future__ import annotations

import asyncio

import nats
import pytest


class Recorder:
    """A nats-py connection plus the errors its error callback saw."""

    def __init__(self):
        self.errors: list[Exception] = []
        self.nc = None

    async def connect(self, servers, **kwargs):
        async def on_error(exc):
            self.errors.append(exc)

        opts = {"allow_reconnect": False, "max_reconnect_attempts": 0, "connect_timeout": 3}
        opts.update(kwargs)
        self.nc = await nats.connect(servers, error_cb=on_error, **opts)
        return self.nc

    async def wait_error(self, needle: str, timeout: float = 3.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for e in self.errors:
                if needle.lower() in str(e).lower():
                    return str(e)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no error containing {needle!r}; saw {[str(e) for e in self.errors]}")


@pytest.fixture
def recorder():
    return Recorder
