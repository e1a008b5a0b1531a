"""Live traffic through the lab's seeds: a publisher at a steady rate, each event counted at a
receiver by taskId, and a watch on the agents' federation state. All on this machine, talking
only to lab addresses. With a member identity the events are signed federation task events
(the agents store them); without, they go to a subject the agents never see."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import nats

from monitor_agent.loops import close_loop
from monitor_agent.protocol import KIND_TASK, subject_for

SUBJECT = "lab.traffic.tasks"  # outside tbfed.v1: the agents never see this traffic
AGENT_TASKS = "tbfed.v1.task.>"  # the agents' own task events, counted by (nodeId, taskId, status)


@dataclass
class Report:
    published: int
    received: int  # distinct taskIds seen by at least one receiver
    lost: list[str]
    duplicates: int  # a taskId delivered twice to the same receiver (after a re-send)
    resent: int  # events published again because no flush confirmed them
    max_gap_s: dict[str, float]  # per receiver: longest silence between two events
    agent_states: dict[str, list[str]] = field(default_factory=dict)
    # nodeId -> {(taskId, status, timestamp)}: the agents' own task events as the receivers saw them
    agent_events: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    agent_gap_s: dict[str, float] = field(default_factory=dict)  # per agent: longest time not CONNECTED

    def summary(self) -> str:
        gaps = ", ".join(f"{k} {v:.2f} s" for k, v in self.max_gap_s.items())
        agents = "".join(f", agent {k} not connected for {v:.1f} s at most" for k, v in self.agent_gap_s.items())
        return (f"published {self.published}, received {self.received}, lost {len(self.lost)}, "
                f"re-sent {self.resent}, duplicates {self.duplicates}, longest gap {gaps}{agents}")


class Traffic:
    """`rate` events/s published through `pub_urls`; receivers each on their own seed order."""

    def __init__(self, pub_urls: list[str], receivers: dict[str, list[str]], user: str, password: str,
                 rate: float = 20.0, agents: dict[str, str] | None = None, agent_auth: dict | None = None,
                 member=None):
        self.pub_urls, self.receivers, self.rate = pub_urls, receivers, rate
        self.member = member  # monitor_agent.identity.Identity: signed tbfed.v1.task events
        self.subject = subject_for(KIND_TASK, member.node_id) if member else SUBJECT
        self.auth = {"user": user, "password": password}
        self.agents = agents or {}
        self.agent_auth = agent_auth
        self.agent_events: dict[str, set[tuple[str, str, str]]] = {}
        self.published: list[str] = []
        self.seen: dict[str, dict[str, float]] = {name: {} for name in receivers}
        self.dups = 0
        self.resent = 0
        self.gaps: dict[str, float] = dict.fromkeys(receivers, 0.0)
        self.states: dict[str, list[str]] = {name: [] for name in self.agents}
        self.agent_gaps: dict[str, float] = dict.fromkeys(self.agents, 0.0)
        self._stop = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._error_trace = ""
        self._threads = [threading.Thread(target=self._run, daemon=True)]
        if self.agents:
            self._threads.append(threading.Thread(target=self._watch_agents, daemon=True))

    def _opts(self, servers):
        return dict(servers=servers, **self.auth, dont_randomize=True, allow_reconnect=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.2, ping_interval=1,
                    max_outstanding_pings=2, connect_timeout=2, pending_size=8 * 1024 * 1024)

    def _run(self):
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self._error = e
            self._error_trace = traceback.format_exc()
            self._ready.set()
        finally:
            close_loop(self._loop)

    async def _main(self):
        conns = []
        for name, urls in self.receivers.items():
            nc = await nats.connect(**self._opts(urls))
            last = [time.monotonic()]

            async def on_msg(msg, name=name, last=last):
                now = time.monotonic()
                self.gaps[name] = max(self.gaps[name], now - last[0])
                last[0] = now
                tid = json.loads(msg.data)["taskId"]
                if tid in self.seen[name]:
                    self.dups += 1
                self.seen[name][tid] = now

            await nc.subscribe(self.subject, cb=on_msg)
            await nc.flush()
            conns.append(nc)
            if self.agent_auth:  # the agents' events, on each receiver's seed order too
                anc = await nats.connect(**{**self._opts(urls), **self.agent_auth})

                async def on_agent(msg):
                    m = json.loads(msg.data)
                    self.agent_events.setdefault(m["nodeId"], set()).add((m["taskId"], m["status"], m["timestamp"]))

                await anc.subscribe(AGENT_TASKS, cb=on_agent)
                await anc.flush()
                conns.append(anc)
        pub = await nats.connect(**self._opts(self.pub_urls))
        self._ready.set()
        # At least once: every half second a flush (PING/PONG) confirms what the server took; what
        # a dying connection swallowed unconfirmed is published again after the reconnect.
        unconfirmed: list[tuple[str, bytes]] = []
        n, t0 = 0, time.monotonic()
        while not self._stop.is_set():
            tid, data, headers = self._event(n)
            await self._publish(pub, data, headers)
            unconfirmed.append((tid, data, headers))
            self.published.append(tid)
            n += 1
            if n % max(1, int(self.rate / 2)) == 0:
                await self._confirm(pub, unconfirmed)
            await asyncio.sleep(max(0.0, t0 + n / self.rate - time.monotonic()))
        for _ in range(50):
            if await self._confirm(pub, unconfirmed):
                break
        await asyncio.sleep(2)
        for nc in [pub, *conns]:
            try:
                await nc.close()
            except OSError:  # its last inline flush met a dead socket: nothing left to count
                pass

    def _event(self, n: int) -> tuple[str, bytes, dict | None]:
        if self.member is None:
            tid = f"lab-{n:07d}"
            return tid, json.dumps({"taskId": tid, "status": "completed"}).encode(), None
        tid = f"global-task-{n:012x}"
        msg = {
            "v": 1, "event": "task_completed", "nodeId": self.member.node_id, "taskId": tid, "chainId": 1,
            "blockNumber": 18950234 + n, "taskType": "wasm", "status": "completed", "executionTimeMs": 245,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }  # fmt: skip
        data = json.dumps(msg, separators=(",", ":")).encode()
        return tid, data, self.member.headers(data)

    async def _confirm(self, pub, unconfirmed) -> bool:
        try:
            await pub.flush(timeout=2)
        except Exception:  # noqa: BLE001 - reconnecting or timed out: re-send once connected again
            for _ in range(150):
                if pub.is_connected:
                    break
                await asyncio.sleep(0.2)
            for _tid, data, headers in unconfirmed:
                await self._publish(pub, data, headers)
            self.resent += len(unconfirmed)
            return False
        unconfirmed.clear()
        return True

    async def _publish(self, pub, data: bytes, headers: dict | None) -> None:
        """nats-py's publish can raise the socket's error (ConnectionResetError) when it flushes
        inline just as the connection dies: wait for the reconnect and publish again; the flush
        that follows confirms it like any other."""
        for _ in range(150):
            try:
                await pub.publish(self.subject, data, headers=headers)
                return
            except OSError:
                await asyncio.sleep(0.2)
        await pub.publish(self.subject, data, headers=headers)

    def _watch_agents(self):
        away: dict[str, float | None] = dict.fromkeys(self.agents)  # since when not CONNECTED
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                for name, url in self.agents.items():
                    try:
                        state = client.get(url + "/api/federation/status").json()["state"]
                    except (httpx.HTTPError, ValueError, KeyError):
                        state = "UNANSWERED"  # e.g. the agent restarting onto new credentials
                    now = time.monotonic()
                    if state == "CONNECTED":
                        if away[name] is not None:
                            self.agent_gaps[name] = max(self.agent_gaps[name], now - away[name])
                        away[name] = None
                    elif away[name] is None:
                        away[name] = now
                    if not self.states[name] or self.states[name][-1] != state:
                        self.states[name].append(state)
                time.sleep(0.2)
            for name, since in away.items():  # still away at the end
                if since is not None:
                    self.agent_gaps[name] = max(self.agent_gaps[name], time.monotonic() - since)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        if not self._ready.wait(30) or self._error:
            self._stop.set()
            raise RuntimeError(f"traffic could not start: {self._error}")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def report(self) -> Report:
        if self._error:
            raise RuntimeError(f"traffic failed: {self._error!r}\n{self._error_trace}")
        got = set().union(*self.seen.values()) if self.seen else set()
        return Report(
            published=len(self.published),
            received=len(got),
            lost=[t for t in self.published if t not in got],
            duplicates=self.dups,
            resent=self.resent,
            max_gap_s=dict(self.gaps),
            agent_states=self.states,
            agent_events={k: set(v) for k, v in self.agent_events.items()},
            agent_gap_s=dict(self.agent_gaps),
        )
