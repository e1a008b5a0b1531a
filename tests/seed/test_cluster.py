"""A 3-server seed cluster from one spec and one `up`: full-mesh routes, messages cross it."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from seed import lifecycle
from tests.plugins.tools import http_get

pytestmark = pytest.mark.slow


def _routes_up(monitor_url: str) -> set[str]:
    routez = http_get(f"{monitor_url}/routez", timeout=3).json()
    return {r.get("remote_name") or r.get("remote_id") for r in routez.get("routes", [])}


def test_three_servers_route_to_each_other_and_relay_messages(seed_factory):
    handle = seed_factory(servers=3)
    assert handle.names == ["seed-1", "seed-2", "seed-3"]
    deadline = time.monotonic() + 10
    while True:
        seen = {name: _routes_up(url) for name, url in zip(handle.names, handle.monitor_urls, strict=True)}
        if all(seen[n] >= set(handle.names) - {n} for n in handle.names) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for name in handle.names:
        assert seen[name] >= set(handle.names) - {name}, seen

    async def go():
        sub = await nats.connect(handle.url_for("observer", 2), allow_reconnect=False)
        got = []

        async def cb(msg):
            got.append((msg.subject, msg.data))

        await sub.subscribe("tbfed.v1.>", cb=cb)
        await sub.flush()
        pub = await nats.connect(handle.url_for("monitor", 0), allow_reconnect=False)
        # interest propagates over the routes asynchronously: publish until it arrives
        for _ in range(100):
            await pub.publish("tbfed.v1.task.node-aaaaaaaaaa", b"from seed-1")
            await pub.flush()
            await asyncio.sleep(0.05)
            if got:
                break
        assert got and got[0] == ("tbfed.v1.task.node-aaaaaaaaaa", b"from seed-1")
        await pub.close()
        await sub.close()

    asyncio.run(go())
    healthy = {s.name for s in lifecycle.status(handle.spec, None, handle.state_dir) if s.healthy}
    assert healthy == set(handle.names)
