"""Attack: a monitor (or enrolled node, or observer) with the federation's history stream in reach
tries to erase it — purge, delete, delete one message, shrink it with an update, or make a durable
consumer — so that agents back from an outage catch up on nothing. The seed must refuse every one
(permissions violation), while reading the stream (info, ordered consumer) still works.

Real nats-server with JetStream, started and configured by seedctl's code (spec `history:`).
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig

from monitor_agent.protocol import history_stream
from seed import history

STREAM = history_stream()


async def _attack(url: str) -> dict[str, str]:
    errors: list[Exception] = []

    async def on_error(exc):
        errors.append(exc)

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
    js = nc.jetstream(timeout=1.0)
    outcome: dict[str, str] = {}
    attacks = {
        "purge": lambda: js.purge_stream(STREAM),
        "delete": lambda: js.delete_stream(STREAM),
        "delete_msg": lambda: js.delete_msg(STREAM, 1),
        "shrink": lambda: js.update_stream(StreamConfig(name=STREAM, subjects=["tbfed.v1.task.>"], max_msgs=1)),
        "durable": lambda: js.add_consumer(STREAM, durable_name="squat"),
    }
    try:
        for name, attack in attacks.items():
            try:
                await attack()
                outcome[name] = "accepted"
            except Exception as exc:  # noqa: BLE001 - the refusal's kind is what we record
                outcome[name] = type(exc).__name__
        await asyncio.sleep(0.2)
        info = await js.stream_info(STREAM)  # reading is allowed
        sub = await js.subscribe("tbfed.v1.task.>", stream=STREAM, ordered_consumer=True)
        msg = await sub.next_msg(timeout=3)
        outcome["read"] = msg.subject
        outcome["messages"] = str(info.state.messages)
        await sub.unsubscribe()
    finally:
        await nc.close()
    outcome["violations"] = str(sum("ermissions" in str(e) for e in errors))
    return outcome


async def _publish(url: str) -> None:
    nc = await nats.connect(url)
    await nc.publish("tbfed.v1.task.node-aaaaaaaaaa", b"{}")
    await nc.flush()
    await nc.close()


@pytest.mark.parametrize("user", ["monitor", "observer"])
def test_receivers_cannot_purge_or_delete_the_history(seed_factory, user):
    s = seed_factory(history={"max_age": "1h", "max_bytes": "64MiB"})
    history.ensure_stream(s.spec, timeout=20)
    asyncio.run(_publish(s.url_for("monitor")))
    outcome = asyncio.run(_attack(s.url_for(user)))
    for name in ("purge", "delete", "delete_msg", "shrink", "durable"):
        assert outcome[name] != "accepted", (name, outcome)
    assert int(outcome["violations"]) >= 5, outcome
    assert outcome["read"] == "tbfed.v1.task.node-aaaaaaaaaa" and outcome["messages"] == "1"
    asyncio.run(_publish(s.url_for("monitor")))
    state = history.ensure_stream(s.spec, timeout=20)
    assert state.messages == 2  # nothing was erased
