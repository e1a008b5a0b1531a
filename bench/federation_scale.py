"""Federation at scale: a 3-node seed cluster, N simulated nodes, two real agents measuring.

    python bench/federation_scale.py                 # N = 10, 100, 1000 (+ faults at 1000)
    python bench/federation_scale.py --quick         # N = 10, 100; short windows; no faults
    python bench/federation_scale.py --n 1000 --duration 60
    python bench/federation_scale.py --n 1000 --auth password   # the bcrypt baseline (slow failover)
    python bench/federation_scale.py --n 100,1000 --fanout --catch-up --no-faults   # issue 16 figures

Everything is real: three nats-server processes clustered from one generated spec (seed
lifecycle code), two `monitor-agent run` processes (gunicorn) with federation on, and N
simulated nodes in this process (asyncio, one nats-py connection each) speaking the real
protocol: messages built by monitor_agent.anonymizer and signed by monitor_agent.identity,
all authenticating as the shared `monitor` user with its nkey (`--auth password`: bcrypt),
presence every 30 s, stats when changed (at most one per 1.2 s, at least every 30 s), and
task events at a realistic rate (a task every --task-interval seconds per node on average:
received, then completed or failed after a log-normal execution time).

Per N it reports seed CPU and memory (/varz), messages/s through the cluster, each agent's
ingest rate, drop counts by reason, inbound KB/s per agent (/connz out_bytes of the agent's
connection), agent RSS and CPU, publish->WebSocket p50/p99 latency and /api/federation/peers
correctness. At the largest N (>= 1000, or --faults) it then stops one seed (clients must fail
over within 10 s; the cluster must re-mesh when it returns) and kill -9s one agent mid-ingest
(its database must pass PRAGMA integrity_check and it must resume).

--fanout: every simulated node also receives the whole feed, as an agent does: one lightweight
subscriber per node (a raw NATS connection subscribed to `tbfed.v1.>` that only counts bytes),
so the seeds' egress is the real N² (docs/capacity.md). Adds seed egress bytes/s (/varz out_bytes,
routes included), the per-subscriber inbound and what the subscribers got vs what was sent,
and at the end the fit egress = c · N².
--catch-up: the seeds keep a history (spec `history:`, replicas 3); per N, agent B is stopped,
a 10-minute hole of the N nodes' task events (600 s · 2 events per --task-interval per node) is
published into the seeds, and B is started again: seconds until it stored all of them
(bench/catch_up.py's hole publisher; live traffic continues meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import psutil
import websocket
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor_agent import anonymizer  # noqa: E402
from monitor_agent.identity import Identity, node_id_for_key  # noqa: E402
from monitor_agent.model import LocalTask  # noqa: E402
from monitor_agent.protocol import KIND_PRESENCE, KIND_STATS, KIND_TASK, REGIONS, subject_for  # noqa: E402
from seed import lifecycle  # noqa: E402
from seed import secrets as seed_secrets  # noqa: E402
from seed import users as seed_users  # noqa: E402
from seed.demo import AgentProcess, agent_env, os_port  # noqa: E402
from seed.monitoring import EndpointError, Monitor  # noqa: E402
from seed.spec import load_spec  # noqa: E402
from seed.users import all_hashes, credentials_text  # noqa: E402

HOST = "127.0.0.1"
HEARTBEAT_S = 30.0
STATS_MIN_GAP_S = 1.2  # receivers allow 1/s; keep a margin for scheduling jitter
STATS_MAX_SILENCE_S = 30.0
PRESENCE_MIN_GAP_S = 6.0  # receivers allow 1 per 5 s
CHAINS = (1, 43113, 43114)
CONNECT_CONCURRENCY = int(os.environ.get("BENCH_CONNECT_CONCURRENCY", "4"))
SYSTEM_ACCOUNT = os.environ.get("BENCH_SYSTEM_ACCOUNT", "true") == "true"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the seed cluster


def cluster_spec(root: Path, auth: str = "nkey", history: bool = False) -> dict:
    servers = []
    for i in (1, 2, 3):
        servers.append(
            {
                "name": f"seed-{i}",
                "host": HOST,
                "client_port": os_port(),
                "cluster_port": os_port(),
                "monitor_host": HOST,
                "monitor_port": os_port(),
            }
        )
    extra = {"history": {"max_age": "24h", "max_bytes": "2GiB", "replicas": "auto"}} if history else {}
    return {
        **extra,
        "name": "tbfed-bench",
        "cluster": {"name": "tbfed-bench-seeds"},
        "system_account": SYSTEM_ACCOUNT,
        "servers": servers,
        "users": [{"name": "admin", "role": "admin"}, {"name": "monitor", "role": "monitor", "auth": auth}],
        "limits": {"max_connections": 20000, "lame_duck_duration_s": 30, "lame_duck_grace_period_s": 1},
        "secrets_dir": "secrets",
        "state_dir": "state",
        "rendered_dir": "rendered",
    }


# ---------------------------------------------------------------- simulated nodes


@dataclass
class Shared:
    """What the simulated nodes and the observers share (one event loop + WS threads)."""

    published: dict[str, int] = field(default_factory=lambda: {KIND_TASK: 0, KIND_STATS: 0, KIND_PRESENCE: 0})
    published_bytes: int = 0
    # (sourceNode, taskId, status) -> wall time of publish
    task_sent: dict[tuple[str, str, str], float] = field(default_factory=dict)
    disconnects: dict[str, float] = field(default_factory=dict)
    failovers: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    disconnect_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_identity() -> Identity:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Identity(key, raw, secrets.token_bytes(32), node_id_for_key(raw), True)


class SimNode:
    """One well-behaved node: a real nats-py connection and the real message builders."""

    def __init__(self, index: int, urls: list[str], auth: dict, shared: Shared, task_interval: float):
        self.index = index
        self.identity = make_identity()
        self.node_id = self.identity.node_id
        # Spread over the seeds: each node prefers "its" seed and lists the others for failover.
        primary = index % len(urls)
        self.urls = urls[primary:] + urls[:primary]
        self.auth = auth  # nats-py options: {"nkeys_seed": path} or {"user": .., "password": ..}
        self.shared = shared
        self.task_interval = task_interval
        self.region = REGIONS[index % (len(REGIONS) - 1)]
        self.nc: nats.NATS | None = None
        self.tasks: list[tuple[str, float, float | None]] = []  # (status, started, exec ms)
        self.reported = 0
        self.stats_dirty = True
        self.last_stats = 0.0
        self.rng = random.Random(index)

    async def connect(self) -> None:
        async def disconnected():
            self.shared.disconnects[self.node_id] = time.monotonic()
            self.shared.disconnect_count += 1

        async def reconnected():
            t = self.shared.disconnects.pop(self.node_id, None)
            if t is not None:
                self.shared.failovers.append(time.monotonic() - t)

        async def quiet(e):
            # Counted (not printed): a reconnect storm would otherwise flood the terminal.
            key = f"{type(e).__name__}: {str(e)[:80]}"
            self.shared.errors[key] = self.shared.errors.get(key, 0) + 1

        self.nc = await nats.connect(
            servers=self.urls,
            **self.auth,
            name="bench-sim",
            dont_randomize=True,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=10,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=quiet,
        )
        # Connected means the seed processed CONNECT (nkey signature or bcrypt check) and answers: prove it.
        await self.nc.flush(timeout=60)

    @property
    def server_port(self) -> int | None:
        try:
            return self.nc.connected_url.port if self.nc and self.nc.connected_url else None
        except AttributeError:
            return None

    async def _send(self, kind: str, message: dict) -> None:
        payload = json.dumps(message, separators=(",", ":")).encode()
        await self.nc.publish(
            subject_for(kind, self.node_id), payload, headers=self.identity.headers(payload)
        )
        self.shared.published[kind] += 1
        self.shared.published_bytes += len(payload)

    async def presence(self, event: str) -> None:
        await self._send(
            KIND_PRESENCE,
            anonymizer.presence_message(
                event, node_id=self.node_id, region=self.region, version="0.1.0", tasks_reported=self.reported
            ),
        )

    async def stats(self) -> None:
        now = time.time()
        day = [t for t in self.tasks if now - t[1] < 86400]
        done = [t for t in day if t[0] == "completed"]
        execs = [t[2] for t in done if t[2] is not None]
        msg = anonymizer.stats_message(
            {
                "tasks24h": len(day),
                "tasksCompleted24h": len(done),
                "tasksFailed24h": sum(1 for t in day if t[0] == "failed"),
                "activeTasks": sum(1 for t in day if t[0] == "received"),
                "avgExecutionMs": int(statistics.fmean(execs)) if execs else None,
            },
            node_id=self.node_id,
        )
        await self._send(KIND_STATS, msg)
        self.last_stats = time.monotonic()
        self.stats_dirty = False

    async def task_event(
        self, execution_id: str, status: str, block: int, chain: int, exec_ms: int | None
    ) -> None:
        now = datetime.now(UTC)
        task = LocalTask(
            execution_id=execution_id,
            status=status,
            received_at=now,
            started_at=now,
            finished_at=now if status != "received" else None,
            chain_id=chain,
            block_number=block,
            task_type="js",
            execution_time_ms=exec_ms,
            exit_code=None,
            steps=None,
            memory_peak=None,
            cached=None,
        )
        msg = anonymizer.task_message(task, node_id=self.node_id, task_id=self.identity.task_id)
        self.shared.task_sent[(self.node_id, msg["taskId"], status)] = time.time()
        await self._send(KIND_TASK, msg)
        self.reported += 1
        self.stats_dirty = True

    async def run_task(self) -> None:
        execution_id = str(uuid.uuid4())
        chain = self.rng.choice(CHAINS)
        block = self.rng.randint(18_000_000, 48_000_000)
        idx = len(self.tasks)
        self.tasks.append(("received", time.time(), None))
        await self.task_event(execution_id, "received", block, chain, None)
        exec_s = min(30.0, self.rng.lognormvariate(math.log(0.8), 0.8))
        await asyncio.sleep(exec_s)
        status = "failed" if self.rng.random() < 0.05 else "completed"
        self.tasks[idx] = (status, self.tasks[idx][1], exec_s * 1000)
        await self.task_event(execution_id, status, block, chain, int(exec_s * 1000))

    async def life(self, stop: asyncio.Event) -> None:
        await self.presence("node_online")
        # Receivers allow one presence per 5 s (burst 1): a first heartbeat at exactly 5 s after
        # node_online is dropped whenever network jitter shortens the gap, so leave a margin.
        next_beat = time.monotonic() + HEARTBEAT_S * self.rng.random() + PRESENCE_MIN_GAP_S
        next_task = time.monotonic() + self.rng.expovariate(1 / self.task_interval)
        running: set[asyncio.Task] = set()
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                await self.presence("node_heartbeat")
                next_beat = now + HEARTBEAT_S
            if now >= next_task:
                t = asyncio.create_task(self.run_task())
                running.add(t)
                t.add_done_callback(running.discard)
                next_task = now + self.rng.expovariate(1 / self.task_interval)
            gap = now - self.last_stats
            if (self.stats_dirty and gap >= STATS_MIN_GAP_S) or gap >= STATS_MAX_SILENCE_S:
                await self.stats()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25 + self.rng.random() * 0.1)
        for t in running:
            t.cancel()

    async def close(self) -> None:
        if self.nc is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.presence("node_offline")
                await self.nc.drain()
        elif self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()


class FeedListener(asyncio.Protocol):
    """What an agent's subscription costs the seed, without an agent: a raw NATS client connection
    subscribed to `tbfed.v1.>` that counts the bytes it is sent and answers the server's PINGs."""

    def __init__(self, auth: dict, ready: asyncio.Future):
        self.auth, self.ready = auth, ready
        self.transport: asyncio.Transport | None = None
        self.bytes = 0
        self.buf = b""
        self.connected = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def _connect_line(self, info: dict) -> bytes:
        opts = {"verbose": False, "pedantic": False, "name": "bench-feed", "lang": "python", "version": "0",
                "protocol": 1, "headers": True, "no_responders": True}  # fmt: skip
        if "nkeys_seed" in self.auth:
            import nkeys

            with open(self.auth["nkeys_seed"], "rb") as f:
                kp = nkeys.from_seed(f.read().strip())
            opts["nkey"] = kp.public_key.decode()
            opts["sig"] = base64.urlsafe_b64encode(kp.sign(info["nonce"].encode())).decode().rstrip("=")
        else:
            opts["user"], opts["pass"] = self.auth["user"], self.auth["password"]
        return b"CONNECT " + json.dumps(opts).encode() + b"\r\nSUB tbfed.v1.> 1\r\nPING\r\n"

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        if not self.connected:
            self.buf += data
            if b"\r\n" not in self.buf:
                return
            line, _, rest = self.buf.partition(b"\r\n")
            if line.startswith(b"INFO "):
                self.transport.write(self._connect_line(json.loads(line[5:])))
                self.buf = rest
            if b"PONG" in self.buf:
                self.connected, self.buf = True, b""
                if not self.ready.done():
                    self.ready.set_result(True)
            elif b"-ERR" in self.buf and not self.ready.done():
                self.ready.set_exception(RuntimeError(self.buf.decode(errors="replace")[:200]))
            return
        if b"PING\r\n" in data:  # a payload that contains it costs one spare PONG: harmless
            self.transport.write(b"PONG\r\n")

    def connection_lost(self, exc) -> None:
        self.connected = False
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed"))


async def open_listeners(n: int, urls: list[str], auth: dict) -> list[tuple[asyncio.Transport, FeedListener]]:
    loop = asyncio.get_running_loop()
    out = []
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY * 4)

    async def one(i: int):
        url = urls[i % len(urls)].removeprefix("nats://")
        host, port = url.rsplit(":", 1)
        async with sem:
            ready = loop.create_future()
            transport, proto = await loop.create_connection(
                lambda: FeedListener(auth, ready), host, int(port)
            )
            await asyncio.wait_for(ready, 60)
            out.append((transport, proto))

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


# ---------------------------------------------------------------- observers


class WsObserver(threading.Thread):
    """A real WebSocket client of one agent: publish->WebSocket latency and which task events arrived."""

    def __init__(self, label: str, url: str, shared: Shared):
        super().__init__(daemon=True, name=f"ws-{label}")
        self.label, self.url, self.shared = label, url, shared
        self.latencies: list[float] = []
        self.seen: set[tuple[str, str, str]] = set()
        self.stop_flag = threading.Event()
        self.ws: websocket.WebSocket | None = None
        self.errors = 0

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.ws = websocket.create_connection(self.url.replace("http", "ws", 1) + "/ws", timeout=2)
                while not self.stop_flag.is_set():
                    try:
                        raw = self.ws.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    now = time.time()
                    if not raw:
                        continue
                    msg = json.loads(raw)
                    if msg.get("type") != "federation_task":
                        continue
                    d = msg["data"]
                    key = (d.get("sourceNode"), d.get("taskId"), d.get("status"))
                    self.seen.add(key)
                    sent = self.shared.task_sent.get(key)
                    if sent is not None:
                        self.latencies.append((now - sent) * 1000)
            except Exception:
                self.errors += 1
                time.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    self.ws.close()

    def stop(self) -> None:
        self.stop_flag.set()


def prom_values(text: str, name: str) -> dict[str, float]:
    """Samples of one Prometheus metric family: {label string: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
            if m:
                out[m.group(1) or ""] = out.get(m.group(1) or "", 0.0) + float(m.group(2))
    return out


@dataclass
class AgentSnap:
    at: float
    received: float
    stored: float
    dropped: dict[str, float]
    cpu: float
    rss: int
    inbound_bytes: int


def agent_snapshot(agent: AgentProcess, seeds: list) -> AgentSnap:
    text = httpx.get(f"{agent.url}/metrics", timeout=5).text
    received = sum(prom_values(text, "federation_messages_received_total").values())
    stored = sum(prom_values(text, "federation_tasks_stored_total").values())
    dropped = prom_values(text, "federation_messages_dropped_total")
    cpu, rss = 0.0, 0
    local_ports = set()
    for pid in agent.proc.pids():
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
            for c in p.net_connections(kind="tcp"):
                if c.raddr and c.raddr.port in {s.client_port for s in seeds}:
                    local_ports.add(c.laddr.port)
    inbound = 0
    for s in seeds:
        with contextlib.suppress(EndpointError):
            conns = Monitor(s.monitor_url, 5).connz(limit=5000).get("connections") or []
            inbound += sum(c.get("out_bytes", 0) for c in conns if c.get("port") in local_ports)
    return AgentSnap(time.monotonic(), received, stored, dropped, cpu, rss, inbound)


def varz_all(seeds: list) -> dict[str, dict]:
    out = {}
    for s in seeds:
        with contextlib.suppress(EndpointError):
            out[s.name] = Monitor(s.monitor_url, 5).varz()
    return out


def peers_check(agent: AgentProcess, node_ids: set[str]) -> tuple[int, int]:
    """(listed, listed and online) among the simulated nodes, from /api/federation/peers."""
    r = httpx.get(f"{agent.url}/api/federation/peers", timeout=10).json()
    peers = {p["nodeId"]: p for p in r.get("peers", [])}
    listed = node_ids & set(peers)
    return len(listed), sum(1 for n in listed if peers[n].get("online"))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


# ---------------------------------------------------------------- one run


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="tbfed-bench-"))
        self.spec = None
        self.agents: list[AgentProcess] = []
        self.results: list[dict] = []
        self.faults: dict = {}

    # -- setup / teardown --

    def start_cluster(self) -> None:
        path = self.root / "seed.yaml"
        data = cluster_spec(self.root, self.args.auth, history=self.args.catch_up)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.spec = load_spec(path)
        all_hashes(self.spec)  # every user's credentials exist (nkey seeds, bcrypt hashes) before start
        t0 = time.monotonic()
        lifecycle.up(self.spec, timeout=30)
        log(f"3-node seed cluster up in {time.monotonic() - t0:.1f}s: {', '.join(self.spec.client_urls)}")
        self.wait_mesh(30)
        if self.args.catch_up:
            from seed import history

            log(history.describe(history.ensure_stream(self.spec, timeout=60), self.spec))

    def sim_auth(self) -> dict:
        """nats-py auth options of the simulated nodes: the same monitor user as the real agents."""
        user = self.spec.user("monitor")
        if user.auth == "nkey":
            return {"nkeys_seed": str(seed_users.nkey_seed_path(self.spec.secrets_dir, user.name))}
        name, _, password = credentials_text(self.spec, user).partition(":")
        return {"user": name, "password": password}

    def wait_mesh(self, timeout: float) -> float:
        """Seconds until every seed has routes to both others."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if all(len(self.route_peers(s)) >= len(self.spec.servers) - 1 for s in self.spec.servers):
                return time.monotonic() - t0
            time.sleep(0.1)
        state = {sv.name: sorted(self.route_peers(sv)) for sv in self.spec.servers}
        raise RuntimeError(f"cluster did not mesh within {timeout:.0f}s: route peers {state}")

    @staticmethod
    def route_peers(server) -> set[str]:
        try:
            routes = Monitor(server.monitor_url, 2).routez().get("routes") or []
        except EndpointError:
            return set()
        return {r.get("remote_name") or r.get("remote_id") for r in routes}

    def start_agents(self) -> None:
        # What `seedctl users credentials monitor` writes: the nkey seed, or user:password.
        creds = self.root / "secrets" / "bench-monitor.creds"
        seed_secrets.write_private(creds, credentials_text(self.spec, self.spec.user("monitor")) + "\n")
        self.creds_file = creds
        urls = self.spec.client_urls
        for i, label in enumerate(("A", "B")):
            port = os_port()
            data = self.root / f"agent-{label.lower()}"
            env = agent_env(
                data_dir=data,
                port=port,
                seed_urls=urls[i:] + urls[:i],
                credentials_file=creds,
                token=secrets.token_urlsafe(24),
                region="EU-WEST" if i == 0 else "NA-EAST",
                broadcast=True,
                extra={"LOG_LEVEL": "WARNING"},
            )
            agent = AgentProcess(label, data, port, env)
            agent.start()
            self.agents.append(agent)
        for agent in self.agents:
            agent.wait_ready(60)
        log("agents A and B connected: " + ", ".join(a.url for a in self.agents))

    def close(self, failed: bool = False) -> None:
        if failed:
            for agent in self.agents:
                log(f"agent {agent.label} alive={agent.proc.alive()} log: {agent.proc.log_tail(15)}")
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.stop()
        if self.spec is not None:
            with contextlib.suppress(Exception):
                lifecycle.down(self.spec, timeout=5, lame_duck=False)
        if self.args.keep:
            log(f"state kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- one N --

    async def run_n(self, n: int, duration: float, faults: bool) -> dict:
        shared = Shared()
        nodes = [
            SimNode(i, self.spec.client_urls, self.sim_auth(), shared, self.args.task_interval)
            for i in range(n)
        ]
        node_ids = {nd.node_id for nd in nodes}
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(nd):
            async with sem:
                await nd.connect()

        t0 = time.monotonic()
        await asyncio.gather(*(connect(nd) for nd in nodes))
        log(f"N={n}: {n} connections in {time.monotonic() - t0:.1f}s")
        listeners: list = []
        if self.args.fanout:
            t0 = time.monotonic()
            listeners = await open_listeners(n, self.spec.client_urls, self.sim_auth())
            log(f"N={n}: {n} feed subscribers in {time.monotonic() - t0:.1f}s")
        stop = asyncio.Event()
        lives = [asyncio.create_task(nd.life(stop)) for nd in nodes]
        observers = [WsObserver(a.label, a.url, shared) for a in self.agents]
        for o in observers:
            o.start()

        loop = asyncio.get_running_loop()
        # Peers: every simulated node listed and online on both agents.
        t_peers = time.monotonic()
        peers_ok_after = None
        while time.monotonic() - t_peers < 120:
            checks = await loop.run_in_executor(None, lambda: [peers_check(a, node_ids) for a in self.agents])
            if all(listed == n and online == n for listed, online in checks):
                peers_ok_after = time.monotonic() - t_peers
                break
            if int(time.monotonic() - t_peers) % 10 == 0:
                log(
                    f"N={n}: peers (listed, online) per agent {checks}; disconnects {shared.disconnect_count};"
                    f" errors {shared.errors}"
                )
            await asyncio.sleep(1)
        log(
            f"N={n}: all peers listed+online on both agents after {peers_ok_after}s;"
            f" disconnects so far {shared.disconnect_count}; errors {shared.errors}"
        )

        await asyncio.sleep(2)
        v0 = await loop.run_in_executor(None, varz_all, self.spec.servers)
        a0 = await loop.run_in_executor(
            None, lambda: [agent_snapshot(a, self.spec.servers) for a in self.agents]
        )
        pub0 = dict(shared.published)
        pub_bytes0 = shared.published_bytes
        feed0 = sum(pr.bytes for _, pr in listeners)
        seed_cpu: list[float] = []
        seed_mem: list[int] = []
        t_start = time.monotonic()
        while time.monotonic() - t_start < duration:
            await asyncio.sleep(min(5, duration))
            vz = await loop.run_in_executor(None, varz_all, self.spec.servers)
            seed_cpu.append(sum(v.get("cpu", 0) for v in vz.values()))
            seed_mem.append(sum(v.get("mem", 0) for v in vz.values()))
        v1 = await loop.run_in_executor(None, varz_all, self.spec.servers)
        a1 = await loop.run_in_executor(
            None, lambda: [agent_snapshot(a, self.spec.servers) for a in self.agents]
        )
        pub1 = dict(shared.published)
        pub_bytes1 = shared.published_bytes
        feed1 = sum(pr.bytes for _, pr in listeners)
        window = a1[0].at - a0[0].at
        peers_end = await loop.run_in_executor(None, lambda: [peers_check(a, node_ids) for a in self.agents])

        row = {
            "n": n,
            "window_s": round(window, 1),
            "published_per_s": round(sum(pub1[k] - pub0[k] for k in pub1) / window, 1),
            "published_by_kind_per_s": {k: round((pub1[k] - pub0[k]) / window, 2) for k in pub1},
            "seed_cpu_pct_sum": round(statistics.fmean(seed_cpu), 1) if seed_cpu else None,
            "seed_mem_mb_sum": round(max(seed_mem) / 1e6, 1) if seed_mem else None,
            "cluster_in_msgs_per_s": round(
                sum(v1[s]["in_msgs"] - v0[s]["in_msgs"] for s in v1 if s in v0) / window, 1
            ),
            "cluster_out_msgs_per_s": round(
                sum(v1[s]["out_msgs"] - v0[s]["out_msgs"] for s in v1 if s in v0) / window, 1
            ),
            "seed_egress_kb_per_s": round(
                sum(v1[s]["out_bytes"] - v0[s]["out_bytes"] for s in v1 if s in v0) / window / 1024, 1
            ),
            "seed_ingress_kb_per_s": round(
                sum(v1[s]["in_bytes"] - v0[s]["in_bytes"] for s in v1 if s in v0) / window / 1024, 1
            ),
            "published_payload_b_per_node_s": round((pub_bytes1 - pub_bytes0) / window / n, 2),
            "seed_cpu_samples": seed_cpu,
            "peers_all_online_after_s": None if peers_ok_after is None else round(peers_ok_after, 1),
            "sim_disconnects": shared.disconnect_count,
            "sim_errors": dict(shared.errors),
            "agents": {},
        }
        for agent, s0, s1, (listed, online) in zip(self.agents, a0, a1, peers_end, strict=True):
            dt = s1.at - s0.at
            drops = {k: s1.dropped.get(k, 0) - s0.dropped.get(k, 0) for k in s1.dropped}
            row["agents"][agent.label] = {
                "ingest_msgs_per_s": round((s1.received - s0.received) / dt, 1),
                "stored_tasks_per_s": round((s1.stored - s0.stored) / dt, 2),
                "drops": {k: v for k, v in drops.items() if v},
                "inbound_kb_per_s": round((s1.inbound_bytes - s0.inbound_bytes) / dt / 1024, 2),
                "rss_mb": round(s1.rss / 1e6, 1),
                "cpu_pct_of_core": round((s1.cpu - s0.cpu) / dt * 100, 1),
                "peers_listed": listed,
                "peers_online": online,
            }

        if listeners:
            row["fanout"] = {
                "subscribers": len(listeners),
                "subscribers_connected_at_end": sum(1 for _, pr in listeners if pr.connected),
                "per_subscriber_inbound_kb_per_s": round((feed1 - feed0) / window / len(listeners) / 1024, 2),
            }
        # Loss and latency of the steady window (before any fault): let in-flight events land first.
        await asyncio.sleep(3)
        sent_steady = set(shared.task_sent)
        for agent, o in zip(self.agents, observers, strict=True):
            lat = list(o.latencies)
            row["agents"][agent.label].update(
                {
                    "task_events_sent": len(sent_steady),
                    "task_events_missing_on_ws": len(sent_steady - o.seen),
                    "ws_p50_ms": None if not lat else round(pct(lat, 0.5), 1),
                    "ws_p99_ms": None if not lat else round(pct(lat, 0.99), 1),
                }
            )

        if self.args.catch_up:
            try:
                row["catch_up"] = await self.catch_up_run(n, nodes, loop)
            except Exception as exc:
                log(f"catch-up aborted: {exc!r}")
                row["catch_up_error"] = repr(exc)

        if faults:
            try:
                row["faults"] = await self.faults_run(nodes, shared, observers, loop)
            except Exception as exc:
                log(f"faults aborted: {exc!r}")
                row["faults_error"] = repr(exc)

        # Drain: stop producing, let in-flight events arrive, then count loss per agent.
        stop.set()
        await asyncio.gather(*lives, return_exceptions=True)
        await asyncio.sleep(3)
        if faults:  # the whole run, faults included
            sent_keys = set(shared.task_sent)
            for agent, o in zip(self.agents, observers, strict=True):
                row["agents"][agent.label]["incl_faults_missing"] = (
                    f"{len(sent_keys - o.seen)} of {len(sent_keys)}"
                )
        for o in observers:
            o.stop()
        for transport, _ in listeners:
            transport.close()
        await asyncio.gather(*(nd.close() for nd in nodes), return_exceptions=True)
        for o in observers:
            o.join(5)
        return row

    # -- catch-up (spec history:) --

    def hole_rows(self, agent: AgentProcess) -> int:
        """Rows of the hole's events in the agent's database (taskType wasm: the simulated nodes' own
        tasks are js)."""
        con = sqlite3.connect(f"file:{agent.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT COUNT(*) FROM federation_tasks WHERE task_type = 'wasm'").fetchone()[0]
        finally:
            con.close()

    async def catch_up_run(self, n: int, nodes: list[SimNode], loop) -> dict:
        """Agent B away while a 10-minute hole of the N nodes' task events reaches the seeds; then
        back: seconds until it stored every one of them (live traffic goes on meanwhile)."""
        from catch_up import publish_hole

        agent = self.agents[1]
        per_node = max(1, round(600 * 2 / self.args.task_interval))  # received + completed per task
        events = per_node * n
        await loop.run_in_executor(None, agent.stop)
        before = await loop.run_in_executor(None, self.hole_rows, agent)
        t0 = time.monotonic()
        members = [nd.identity for nd in nodes]
        # On a thread with its own loop: this loop is busy with N nodes and N subscribers, and the
        # seed gives a new connection 2 s to authenticate.
        await loop.run_in_executor(
            None,
            lambda: asyncio.run(
                publish_hole(
                    self.spec.client_urls[0], members, per_node, base=n * 1_000_000, **self.sim_auth()
                )
            ),
        )
        published_s = time.monotonic() - t0
        t1 = time.monotonic()
        agent.start()  # on this thread: the agent dies with the thread that started it (PDEATHSIG)
        await loop.run_in_executor(None, agent.wait_ready, 120)
        connected_s = time.monotonic() - t1
        done_s = None
        while time.monotonic() - t1 < 900:
            got = await loop.run_in_executor(None, self.hole_rows, agent)
            if got - before >= events:
                done_s = time.monotonic() - t1
                break
            await asyncio.sleep(0.5)
        out = {
            "hole_events": events,
            "publish_s": round(published_s, 1),
            "agent_connected_after_s": round(connected_s, 1),
            "all_stored_after_s": None if done_s is None else round(done_s, 1),
            "stored": got - before,
            "events_per_s": None if not done_s else round(events / (done_s - connected_s)),
        }
        log(f"N={n}: catch-up {out}")
        return out

    # -- faults (at the largest N) --

    async def faults_run(self, nodes: list[SimNode], shared: Shared, observers, loop) -> dict:
        out: dict = {}
        victim = self.spec.servers[1]
        on_victim = [nd for nd in nodes if nd.server_port == victim.client_port]
        shared.failovers.clear()
        log(f"fault 1: stopping {victim.name} ({len(on_victim)} simulated nodes connected to it)")
        t0 = time.monotonic()
        await loop.run_in_executor(
            None, lambda: lifecycle.down(self.spec, [victim.name], timeout=5, lame_duck=False)
        )
        deadline = time.monotonic() + 60
        last_log = 0.0
        while time.monotonic() < deadline:
            moved = sum(1 for nd in on_victim if nd.nc.is_connected and nd.server_port != victim.client_port)
            if moved == len(on_victim):
                break
            if time.monotonic() - last_log > 5:
                last_log = time.monotonic()
                log(f"fault 1: {moved}/{len(on_victim)} failed over after {time.monotonic() - t0:.1f}s")
            await asyncio.sleep(0.1)
        moved = sum(1 for nd in on_victim if nd.nc.is_connected and nd.server_port != victim.client_port)
        all_moved_s = time.monotonic() - t0
        fo = list(shared.failovers)
        out["seed_stop"] = {
            "server": victim.name,
            "clients_on_it": len(on_victim),
            "clients_failed_over": moved,
            "all_failed_over_after_s": round(all_moved_s, 2),
            "failover_p50_s": None if not fo else round(pct(fo, 0.5), 2),
            "failover_max_s": None if not fo else round(max(fo), 2),
        }
        agent_states = await loop.run_in_executor(
            None, lambda: [httpx.get(f"{a.url}/api/federation/status", timeout=5).json() for a in self.agents]
        )
        out["seed_stop"]["agents_connected"] = [s.get("connected") for s in agent_states]
        log(f"fault 1: {out['seed_stop']}")
        await asyncio.sleep(3)
        t1 = time.monotonic()
        try:
            await loop.run_in_executor(None, lambda: lifecycle.up(self.spec, [victim.name], timeout=60))
            await loop.run_in_executor(None, self.wait_mesh, 120)
            out["seed_stop"]["restart_to_mesh_s"] = round(time.monotonic() - t1, 2)
        except Exception as exc:  # a finding, not a crash: report it with the rest
            out["seed_stop"]["restart_to_mesh_s"] = f"FAILED: {exc}"
        log(f"fault 1: {out['seed_stop']}")

        # kill -9 one real agent while it ingests, then check its database and that it resumes.
        agent = self.agents[1]
        log(f"fault 2: kill -9 agent {agent.label} mid-ingest")
        before = await loop.run_in_executor(None, agent_snapshot, agent, self.spec.servers)
        await loop.run_in_executor(None, agent.proc.kill)
        con = sqlite3.connect(agent.db_path)
        try:
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
            rows = con.execute("SELECT COUNT(*) FROM federation_tasks").fetchone()[0]
        finally:
            con.close()
        t2 = time.monotonic()
        agent.start()
        await loop.run_in_executor(None, agent.wait_ready, 60)
        ready = time.monotonic() - t2
        resumed = None
        base = await loop.run_in_executor(None, agent_snapshot, agent, self.spec.servers)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            snap = await loop.run_in_executor(None, agent_snapshot, agent, self.spec.servers)
            if snap.stored > base.stored:
                resumed = time.monotonic() - t2
                break
            await asyncio.sleep(0.5)
        con = sqlite3.connect(agent.db_path)
        try:
            rows_after = con.execute("SELECT COUNT(*) FROM federation_tasks").fetchone()[0]
        finally:
            con.close()
        out["agent_kill9"] = {
            "agent": agent.label,
            "stored_before_kill": before.stored,
            "integrity_check": integrity,
            "rows_after_kill": rows,
            "ready_after_restart_s": round(ready, 2),
            "storing_again_after_s": None if resumed is None else round(resumed, 2),
            "rows_later": rows_after,
        }
        log(f"fault 2: {out['agent_kill9']}")
        return out


# ---------------------------------------------------------------- report


def egress_fit(results: list[dict]) -> float | None:
    """c of egress = c · N² (bytes/s), least squares through the origin over the runs with fan-out."""
    pts = [(r["n"], r["seed_egress_kb_per_s"] * 1024) for r in results if r.get("fanout")]
    if not pts:
        return None
    return sum(e * n * n for n, e in pts) / sum(n**4 for n, _ in pts)


def markdown(results: list[dict], args) -> str:
    lines = [
        "| N | publish msg/s | cluster in/out msg/s | seed CPU % (sum of 3) | seed mem MB (sum) |"
        " agent | ingest msg/s | drops | inbound KB/s | RSS MB | CPU % core | WS p50/p99 ms |"
        " peers listed/online | task events lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for label, a in r["agents"].items():
            drops = ", ".join(f"{k or 'total'}={int(v)}" for k, v in a["drops"].items()) or "0"
            lines.append(
                f"| {r['n']} | {r['published_per_s']} | {r['cluster_in_msgs_per_s']}/{r['cluster_out_msgs_per_s']} |"
                f" {r['seed_cpu_pct_sum']} | {r['seed_mem_mb_sum']} | {label} | {a['ingest_msgs_per_s']} |"
                f" {drops} | {a['inbound_kb_per_s']} | {a['rss_mb']} | {a['cpu_pct_of_core']} |"
                f" {a['ws_p50_ms']}/{a['ws_p99_ms']} | {a['peers_listed']}/{a['peers_online']} of {r['n']} |"
                f" {a['task_events_missing_on_ws']} of {a['task_events_sent']} |"
            )
    for r in results:
        if "faults_error" in r:
            lines += ["", f"Faults at N = {r['n']}: aborted: {r['faults_error']}"]
        if "faults" in r:
            f = r["faults"]
            s, k = f["seed_stop"], f["agent_kill9"]
            lines += [
                "",
                f"Faults at N = {r['n']}:",
                f"- stop {s['server']}: {s['clients_failed_over']}/{s['clients_on_it']} of its clients failed over;"
                f" all within {s['all_failed_over_after_s']} s (per client p50 {s['failover_p50_s']} s,"
                f" max {s['failover_max_s']} s); agents connected: {s['agents_connected']};"
                f" after restart the cluster re-meshed in {s['restart_to_mesh_s']} s",
                f"- kill -9 agent {k['agent']} mid-ingest: PRAGMA integrity_check = {k['integrity_check']};"
                f" {k['rows_after_kill']} rows intact; ready again {k['ready_after_restart_s']} s after restart,"
                f" storing new tasks after {k['storing_again_after_s']} s ({k['rows_later']} rows later)",
            ]
    if any("seed_egress_kb_per_s" in r for r in results):
        lines += [
            "",
            "| N | seed egress KB/s (3 seeds) | model c·N² KB/s | seed CPU % (sum of 3) | per-subscriber inbound KB/s |"
            " agent A inbound KB/s | agent A CPU % core | 10-min hole: events | stored after s (from restart) |"
            " catch-up events/s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        c = egress_fit(results)
        for r in results:
            fan, cu, a = r.get("fanout") or {}, r.get("catch_up") or {}, r["agents"].get("A", {})
            lines.append(
                f"| {r['n']} | {r['seed_egress_kb_per_s']} | {round(c * r['n'] ** 2 / 1024, 1) if c else '-'} |"
                f" {r['seed_cpu_pct_sum']} | {fan.get('per_subscriber_inbound_kb_per_s', '-')} |"
                f" {a.get('inbound_kb_per_s')} | {a.get('cpu_pct_of_core')} | {cu.get('hole_events', '-')} |"
                f" {cu.get('all_stored_after_s', '-')} | {cu.get('events_per_s', '-')} |"
            )
        if c:
            lines += [
                "",
                f"Fit: seed egress = c · N² with c = {c:.1f} B/s (least squares through 0 over N ="
                f" {', '.join(str(r['n']) for r in results)}).",
            ]
    lines += [
        "",
        f"Monitor user auth: {args.auth}. Task interval per node: {args.task_interval} s (mean);"
        f" window {args.duration} s per N; machine:"
        f" {platform.machine()}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default=None, help="comma-separated node counts (default 10,100,1000)")
    ap.add_argument("--quick", action="store_true", help="N = 10,100, 15 s windows, no faults")
    ap.add_argument("--duration", type=float, default=None, help="measurement window per N, s (default 45)")
    ap.add_argument("--task-interval", type=float, default=60.0, help="mean seconds between tasks per node")
    ap.add_argument("--faults", action="store_true", help="run the faults at the largest N even if < 1000")
    ap.add_argument("--no-faults", action="store_true", help="skip the faults")
    ap.add_argument("--fanout", action="store_true", help="every node also receives the feed (N² egress)")
    ap.add_argument("--catch-up", action="store_true", help="history on the seeds; a 10-minute hole per N")
    ap.add_argument("--keep", action="store_true", help="keep the state dir (logs, databases) at the end")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    ap.add_argument(
        "--auth",
        choices=("nkey", "password"),
        default="nkey",
        help="how the shared monitor user authenticates (default nkey; password = bcrypt cost 11 per connection)",
    )
    args = ap.parse_args()
    ns = [int(x) for x in (args.n or ("10,100" if args.quick else "10,100,1000")).split(",")]
    if args.duration is None:
        args.duration = 15.0 if args.quick else 45.0
    bench = Bench(args)
    try:
        bench.start_cluster()
        bench.start_agents()
        for n in ns:
            faults = not args.no_faults and not args.quick and n == max(ns) and (n >= 1000 or args.faults)
            row = asyncio.run(bench.run_n(n, args.duration, faults))
            bench.results.append(row)
            log(json.dumps(row))
            time.sleep(3)
    except BaseException:
        bench.close(failed=True)
        raise
    else:
        bench.close()
    report = markdown(bench.results, args)
    print(report)
    if args.json:
        args.json.write_text(json.dumps(bench.results, indent=2))


if __name__ == "__main__":
    main()
