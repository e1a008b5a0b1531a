"""A real seed enforces the federation's users and subject permissions (nats-py against nats-server)."""

from __future__ import annotations

import asyncio

import nats
import pytest

from monitor_agent.protocol import subject_for, subscribe_subject

NODE_A = "node-aaaaaaaaaa"
NODE_B = "node-bbbbbbbbbb"


async def _collect(nc, subject: str) -> list:
    got: list = []

    async def cb(msg):
        got.append(msg)

    await nc.subscribe(subject, cb=cb)
    await nc.flush()
    return got


async def _until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_monitor_user_publishes_task_events_with_headers(seed, recorder):
    async def go():
        sub, pub = recorder(), recorder()
        s = await sub.connect(seed.url_for("observer"))
        got = await _collect(s, subscribe_subject())
        p = await pub.connect(seed.url_for("monitor"))
        payload = b'{"v":1}' * 100  # 700 B, a realistic federation message size
        await p.publish(subject_for("task", NODE_A), payload, headers={"Tbf-Key": "k", "Tbf-Sig": "s"})
        await p.flush()
        await _until(lambda: got)
        assert got[0].subject == f"tbfed.v1.task.{NODE_A}"
        assert got[0].data == payload and got[0].headers == {"Tbf-Key": "k", "Tbf-Sig": "s"}
        assert p.max_payload == 8192
        assert not pub.errors
        await p.close()
        await s.close()

    asyncio.run(go())


def test_publishing_outside_the_federation_is_refused_by_the_server(seed, recorder):
    async def go():
        pub = recorder()
        p = await pub.connect(seed.url_for("monitor"))
        await p.publish("foo", b"x")
        await p.flush()
        err = await pub.wait_error("permissions violation")
        assert "foo" in err
        await p.close()

    asyncio.run(go())


def test_enrolled_user_cannot_publish_as_another_node(seed_factory, recorder):
    handle = seed_factory(enrolled=[NODE_A])

    async def go():
        watch = recorder()
        w = await watch.connect(handle.url_for("observer"))
        got = await _collect(w, subscribe_subject())
        enrolled = recorder()
        e = await enrolled.connect(handle.url_for(NODE_A))
        await e.publish(subject_for("task", NODE_B), b"impersonation")
        await e.publish(subject_for("presence", NODE_A), b"own")
        await e.flush()
        err = await enrolled.wait_error("permissions violation")
        assert NODE_B in err
        await _until(lambda: got)
        await asyncio.sleep(0.1)
        assert [m.data for m in got] == [b"own"]
        await e.close()
        await w.close()

    asyncio.run(go())


def test_observer_may_not_publish_and_nobody_but_admin_reaches_sys(seed, recorder):
    async def go():
        obs = recorder()
        o = await obs.connect(seed.url_for("observer"))
        await o.publish(subject_for("stats", NODE_A), b"x")
        await o.flush()
        await obs.wait_error("permissions violation")
        mon = recorder()
        m = await mon.connect(seed.url_for("monitor"))
        await m.subscribe("$SYS.>")
        await m.flush()
        await mon.wait_error("permissions violation")
        admin = recorder()
        a = await admin.connect(seed.url_for("admin"))
        reply = await a.request("$SYS.REQ.SERVER.PING", b"", timeout=3)
        assert b"server" in reply.data
        for c in (o, m, a):
            await c.close()

    asyncio.run(go())


def test_wrong_password_is_refused(seed):
    user, _ = seed.credentials("monitor")
    host_port = seed.url.removeprefix("nats://")

    async def go():
        with pytest.raises(Exception, match="(?i)authorization"):
            await nats.connect(
                f"nats://{user}:wrong-password-000000000000@{host_port}",
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
            )

    asyncio.run(go())
