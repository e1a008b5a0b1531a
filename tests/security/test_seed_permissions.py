"""What one member can do to the seed itself (issue 11, item 7), against a real nats-server
rendered by seedctl's own code: read other clients' request replies, or take every connection."""

from __future__ import annotations

import asyncio
import contextlib

import nats
import pytest

from seed import render


async def _connect(url: str, errors: list | None = None):
    async def on_error(exc):
        if errors is not None:
            errors.append(str(exc))

    return await nats.connect(
        url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3, error_cb=on_error
    )


def test_members_cannot_subscribe_to_inbox_replies(seed_factory):
    """The agent makes no NATS requests, so federation users get no `_INBOX` subscription at all:
    a member cannot listen to the replies another client of the account receives."""
    seed = seed_factory(enrolled=("node-a3f7c9d2e1",), system_account=False)  # admin shares the account

    async def attempt():
        leaks: dict[str, list] = {}
        clients = []
        try:
            for user in ("monitor", "observer", "node-a3f7c9d2e1"):
                errors: list[str] = []
                nc = await _connect(seed.url_for(user), errors)
                clients.append(nc)
                got: list = []
                leaks[user] = got

                async def cb(msg, got=got):
                    got.append(msg.data)

                await nc.subscribe("_INBOX.>", cb=cb)
                await nc.flush()
                await asyncio.sleep(0.2)
                assert any("permissions violation" in e.lower() for e in errors), (user, errors)
            admin = await _connect(seed.url_for("admin"))
            clients.append(admin)
            for _ in range(3):
                await admin.publish("_INBOX.victim.1", b"a reply meant for someone else")
            await admin.flush()
            await asyncio.sleep(0.3)
            return leaks
        finally:
            for nc in clients:
                with contextlib.suppress(Exception):
                    await nc.close()

    leaks = asyncio.run(attempt())
    assert leaks == {"monitor": [], "observer": [], "node-a3f7c9d2e1": []}


def test_one_member_cannot_take_the_connections_the_admin_needs(seed_factory):
    seed = seed_factory(max_connections=5)

    async def attempt():
        clients, refused = [], None
        try:
            for _ in range(5):
                try:
                    clients.append(await _connect(seed.url_for("monitor")))
                except Exception as exc:  # the server refuses the connection
                    refused = str(exc)
                    break
            members = len(clients)
            # The admin must still get in (the refused connection may take a moment to be let go).
            for attempt in range(5):
                try:
                    admin = await _connect(seed.url_for("admin"))
                    break
                except Exception:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.3)
            clients.append(admin)
            assert admin.is_connected
            return members, refused
        finally:
            for nc in clients:
                with contextlib.suppress(Exception):
                    await nc.close()

    members, refused = asyncio.run(attempt())
    assert members == 4 and refused is not None


@pytest.mark.parametrize(
    ("limits", "servers", "expected"),
    [
        ({"max_connections": 10_000}, 1, 9_900),  # the default reserve: 100 for the admin
        ({"max_connections": 50}, 1, 45),  # a tenth of a small server
        ({"max_connections": 10_000}, 3, 29_700),  # nats-server counts the account cluster-wide
        ({"max_connections": 10_000, "federation_max_connections": 500}, 3, 500),
    ],
)
def test_the_federation_account_limit_is_rendered(seed_factory, limits, servers, expected):
    seed = seed_factory(servers=servers, start=False, limits=limits)
    assert render.federation_max_connections(seed.spec) == expected
    text = render.render_server(seed.spec, seed.spec.servers[0])
    assert f"limits: {{ max_connections: {expected} }}" in text.split("FED:")[1]
