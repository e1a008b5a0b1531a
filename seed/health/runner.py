"""Check every seed of a spec at once: fetch all endpoints concurrently, then judge each server."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from .. import lifecycle
from ..monitoring import MonitorClient, new_http_client
from ..render import HISTORY_ACCOUNT
from . import sysreq
from .checks import (
    Expectations,
    HistoryExpect,
    Thresholds,
    evaluate,
    live_route_peers,
    msg_rates,
    replica_problem,
    stream_detail,
    uptime_seconds,
)
from .drift import DigestOracle, Expected, configured_store_dir
from .sample import Sample, collect, counters
from .status import CheckResult, Status, worst
from .units import parse_time


@dataclass(slots=True)
class ServerReport:
    """The verdict on one server: all checks, plus the figures the console and /metrics show."""

    name: str
    url: str
    sample: Sample
    results: list[CheckResult]
    figures: dict = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)

    @property
    def failing(self) -> list[CheckResult]:
        """Non-OK checks, worst first."""
        bad = [r for r in self.results if r.status is not Status.OK]
        return sorted(bad, key=lambda r: -r.status.severity)

    def check(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "url": self.url,
            "status": self.status.name,
            "checks": [r.to_dict() for r in self.results],
            "figures": self.figures,
        }


def expected_peers(spec, server) -> tuple[str, ...] | None:
    """Route peers a server must have: every other clustered server of the spec."""
    if server.cluster_port is None:
        return None
    return tuple(s.name for s in spec.servers if s.name != server.name and s.cluster_port is not None)


def history_expect(spec, samples: list[Sample]) -> HistoryExpect | None:
    """The spec's history stream and what the sampled servers say about its leader and replicas."""
    if spec.history is None:
        return None
    from monitor_agent.protocol import history_stream

    name = history_stream(spec.subject_prefix)
    details = {smp.name: sd for smp in samples if (sd := stream_detail(smp.jsz, name)) is not None}
    leaders = [(sd.get("cluster") or {}).get("leader") for sd in details.values()]
    leader = next((x for x in leaders if x), None)
    own = details.get(leader) if leader else None
    leader_view = tuple((own.get("cluster") or {}).get("replicas") or ()) if own is not None else None
    return HistoryExpect(
        stream=name,
        max_bytes=spec.history.max_bytes,
        max_age_s=spec.history.max_age_s,
        replicas=spec.history.replicas,
        leader=leader,
        leader_replicas=leader_view,
        hosted_on=tuple(sorted(details)),
    )


def history_figures(sample: Sample, exp: HistoryExpect) -> dict:
    """The history stream's numbers on this server (spec `history:` only)."""
    sd = stream_detail(sample.jsz, exp.stream) or {}
    state, config = sd.get("state") or {}, sd.get("config") or {}
    leader = (sd.get("cluster") or {}).get("leader") if sd else None
    current = None
    if sd:
        if leader == sample.name or exp.replicas == 1:
            current = True
        elif exp.leader_replicas is not None and exp.leader == leader:
            mine = next((r for r in exp.leader_replicas if r.get("name") == sample.name), None)
            current = mine is not None and replica_problem(mine, Thresholds().replica_silent_s) is None
    return {
        "history_messages": state.get("messages") if sd else None,
        "history_bytes": state.get("bytes") if sd else None,
        "history_max_bytes": (config.get("max_bytes") or exp.max_bytes) if sd else None,
        "history_leader": (leader == sample.name) if sd and leader else (False if sd else None),
        "history_replica_current": current,
    }


def figures(sample: Sample, prev: Mapping | None, peers: tuple[str, ...] | None) -> dict:
    """The headline numbers of one server (None where unknown)."""
    v = sample.varz or {}
    rates = msg_rates(sample, prev)
    not_after = parse_time(v.get("tls_cert_not_after"))
    cert = int(not_after.timestamp() - sample.at) if not_after is not None else None
    up = uptime_seconds(sample) if v else None
    return {
        "up": sample.varz is not None,
        "version": v.get("version"),
        "server_id": v.get("server_id"),
        "uptime_s": int(up) if up is not None else None,
        "connections": v.get("connections"),
        "max_connections": v.get("max_connections"),
        "in_msgs": v.get("in_msgs"),
        "out_msgs": v.get("out_msgs"),
        "in_msgs_per_s": round(rates[0], 3) if rates else None,
        "out_msgs_per_s": round(rates[1], 3) if rates else None,
        "slow_consumers": v.get("slow_consumers"),
        "mem_bytes": v.get("mem"),
        "cpu_percent": v.get("cpu"),
        "subscriptions": v.get("subscriptions"),
        "routes_expected": len(peers) if peers is not None else 0,
        "routes_live": len(live_route_peers(sample.routez)) if sample.routez is not None else None,
        "cert_expiry_s": cert,
        "config_digest": v.get("config_digest"),
        "poll_ms": round(sample.elapsed_s * 1000, 2),
    }


async def check_servers(
    spec,
    names: list[str] | None = None,
    *,
    memory: Mapping[str, Mapping] | None = None,
    oracle: DigestOracle | None = None,
    thresholds: Thresholds | None = None,
    timeout: float = 2.0,
    http: httpx.AsyncClient | None = None,
    via: str = "http",
    sys_conn=None,
) -> list[ServerReport]:
    """Sample the chosen servers of `spec` concurrently and run every check on each.

    `via`: http (each server's monitoring port), nats (the system account over a client port,
    `sysreq`), or auto (`sysreq.choose_via`). `sys_conn`: a connection to reuse for nats."""
    servers = [s for s in spec.servers if not names or s.name in names]
    memory = memory or {}
    via = sysreq.choose_via(spec, names, via)
    digest_task = None
    if oracle is not None and spec.history is None:  # else: after sampling, see below
        digest_task = asyncio.create_task(asyncio.to_thread(oracle.expected, spec))
    jsz_account = HISTORY_ACCOUNT if spec.history is not None else None
    try:
        if via == "nats":
            samples = await _collect_nats(spec, [s.name for s in servers], timeout, sys_conn, jsz_account)
        else:
            own_http = http is None
            http = http or new_http_client()
            try:
                samples = await asyncio.gather(
                    *(
                        collect(MonitorClient(http, s.monitor_url, timeout), s.name, jsz_account=jsz_account)
                        for s in servers
                    )
                )
            finally:
                if own_http:
                    await http.aclose()
        digests: dict[str, Expected] = await digest_task if digest_task else {}
        if oracle is not None and spec.history is not None:
            # The JetStream store directory is the host's (the Ansible role's own), not the
            # spec's: expect the one each server runs with, as far as it says.
            store_dirs = {smp.name: d for smp in samples if (d := configured_store_dir(smp.varz))}
            digests = await asyncio.to_thread(oracle.expected, spec, store_dirs)
    finally:
        if digest_task is not None and not digest_task.done():
            digest_task.cancel()
    versions = {smp.name: smp.varz.get("version", "?") for smp in samples if smp.varz}
    hist = history_expect(spec, samples)
    reports = []
    for server, sample in zip(servers, samples, strict=True):
        peers = expected_peers(spec, server)
        cluster_versions = {n: versions[n] for n in (peers or ()) if n in versions}
        exp_digest = digests.get(server.name)
        exp = Expectations(
            peers=peers,
            digest=exp_digest.digest if exp_digest else None,
            digest_error=(exp_digest.error if exp_digest else "drift check not requested"),
            cluster_versions=cluster_versions,
            intended_start=lifecycle.intended_start(spec, server.name),
            history=hist,
        )
        prev = memory.get(server.name)
        results = evaluate(sample, prev, exp, thresholds)
        figs = figures(sample, prev, peers)
        if hist is not None:
            figs.update(history_figures(sample, hist))
        reports.append(ServerReport(server.name, sample.url, sample, results, figs))
    return reports


async def _collect_nats(
    spec, names: list[str], timeout: float, conn, jsz_account: str | None
) -> list[Sample]:
    own = conn is None
    try:
        conn = conn or await sysreq.connect(spec, timeout)
    except sysreq.SysError as exc:
        return sysreq.unreachable_samples(names, str(exc))
    try:
        return await sysreq.collect_all(conn, names, timeout, jsz_account=jsz_account)
    except sysreq.nats_failures() as exc:  # the seed we asked through went away mid-round
        return sysreq.unreachable_samples(names, f"connection to the seeds lost: {exc or type(exc).__name__}")
    finally:
        if own:
            await conn.close()


def run_sync(make_coro):
    """Run a coroutine to completion from sync code, even where this thread already runs a loop
    (an embedding application, Playwright's sync API): then on a short-lived thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="seed-health") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


def run_health(spec, names: list[str] | None = None, **kwargs) -> list[ServerReport]:
    """Synchronous `check_servers` for the CLI."""
    return run_sync(lambda: check_servers(spec, names, **kwargs))


def remember(memory: dict[str, dict], reports: list[ServerReport]) -> dict[str, dict]:
    """Fold this run's counters into the memory (an unreachable server keeps its last figures)."""
    out = dict(memory)
    for rep in reports:
        c = counters(rep.sample)
        if c is None:
            continue
        prev = memory.get(rep.name) or {}
        # Keep knowing that this process is a restart one, for the restart check's whole window.
        if prev.get("start") and (prev["start"] != c.get("start") or prev.get("restarted")):
            c["restarted"] = True
        out[rep.name] = c
    return out
