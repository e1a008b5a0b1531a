"""The health checks: pure functions of one `Sample`, the figures remembered from the previous
sample, and what the spec expects. No I/O here, so every rule is tested against captured JSON."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .sample import Sample, federation_delivered, federation_subscriptions
from .status import CheckResult, Status
from .units import human_bytes, human_duration, parse_time

GiB = 1024**3


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where OK turns into WARNING / CRITICAL; the defaults follow the seed runbook."""

    conn_warn: float = 0.80  # share of max_connections
    conn_crit: float = 0.95
    cert_warn_days: float = 21
    cert_crit_days: float = 7
    mem_warn_bytes: int = 1 * GiB  # a federation seed holds no data: RSS this large means trouble
    mem_crit_bytes: int = 2 * GiB
    cpu_warn: float = 0.75  # share of all cores the server may use
    cpu_crit: float = 0.90
    restart_window_s: float = 600  # a restart observed less than this ago is reported
    traffic_quiet_s: float = 90  # presence heartbeats come every 30 s: 90 s of silence is not normal
    history_warn: float = 0.80  # share of the history stream's max_bytes (spec `history:`)
    history_crit: float = 0.95  # past it the oldest events go before max_age: the catch-up window shrinks
    replica_silent_s: float = 5.0  # the stream leader hears from each replica every second or so


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the spec says this server should look like, and facts about its cluster."""

    peers: tuple[str, ...] | None = None  # expected route peers by server name; None = standalone
    digest: str | None = None  # `nats-server -t` digest of what `seedctl render` produces now
    digest_error: str | None = None  # why `digest` could not be computed
    cluster_versions: Mapping[str, str] = field(default_factory=dict)  # reachable members -> version
    intended_start: str | None = None  # when `seedctl up` started it on this machine (a deliberate start)
    history: HistoryExpect | None = None  # spec `history:`: the stream this server should serve


@dataclass(frozen=True, slots=True)
class HistoryExpect:
    """The history stream as the spec wants it, and what its leader said about its replicas."""

    stream: str
    max_bytes: int
    max_age_s: int
    replicas: int
    leader: str | None = None  # the stream leader as reported by any sampled server
    leader_replicas: tuple[Mapping, ...] | None = None  # the leader's own view of its followers
    hosted_on: tuple[str, ...] = ()  # sampled servers that hold a replica


CHECK_NAMES = (
    "reachable", "healthz", "connections", "slow_consumers", "stale_connections", "memory", "cpu",
    "topology", "config_drift", "tls_cert", "restart", "version_skew", "federation_traffic",
)  # fmt: skip


# Only with `history:` in the spec (without it the checks and their output are as before).
HISTORY_CHECK_NAMES = ("history_stream", "history_replicas", "history_storage")

SKIPPED_UNREACHABLE = "skipped: server unreachable"


def check_names(exp: Expectations) -> tuple[str, ...]:
    return CHECK_NAMES + HISTORY_CHECK_NAMES if exp.history is not None else CHECK_NAMES


def _now(sample: Sample) -> datetime:
    return datetime.fromtimestamp(sample.at, UTC)


def _same_run(sample: Sample, prev: Mapping | None) -> bool:
    """The previous figures came from this very server process (counters are comparable)."""
    return bool(prev and sample.varz and prev.get("start") == sample.varz.get("start"))


def _no_varz(name: str, sample: Sample) -> CheckResult:
    why = sample.varz_error.message if sample.varz_error else "no /varz data"
    return CheckResult(name, Status.UNKNOWN, f"no data: {why}")


def _missing(name: str, sample: Sample, field_name: str) -> CheckResult:
    version = sample.varz.get("version", "?") if sample.varz else "?"
    return CheckResult(name, Status.UNKNOWN, f"/varz of nats-server {version} has no {field_name!r}")


def check_reachable(sample: Sample, prev, exp, th) -> CheckResult:
    err = sample.varz_error
    ms = round(sample.elapsed_s * 1000, 1)
    if err is None:
        how = "$SYS request" if sample.url.startswith("nats") else "monitoring endpoint"
        return CheckResult("reachable", Status.OK, f"{how} answered in {ms:g} ms", ms)
    if err.transport:
        return CheckResult("reachable", Status.CRITICAL, f"unreachable: {err.message}")
    return CheckResult("reachable", Status.UNKNOWN, f"answers HTTP but not as nats-server: {err.message}")


def check_healthz(sample: Sample, prev, exp, th) -> CheckResult:
    if sample.healthz is None:
        err = sample.healthz_error
        status = Status.CRITICAL if err and err.transport else Status.UNKNOWN
        return CheckResult("healthz", status, f"no answer: {err.message if err else 'not asked'}")
    code, body = sample.healthz
    state = body.get("status")
    if code == 200 and state == "ok":
        return CheckResult("healthz", Status.OK, "/healthz ok", "ok")
    if state is None:
        return CheckResult("healthz", Status.UNKNOWN, f"/healthz HTTP {code} without a status field", code)
    error = body.get("error") or "no error text"
    return CheckResult("healthz", Status.CRITICAL, f"/healthz {state} (HTTP {code}): {error}", str(state))


def check_connections(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("connections", sample)
    conns, limit = v.get("connections"), v.get("max_connections")
    if not isinstance(conns, int):
        return _missing("connections", sample, "connections")
    if not isinstance(limit, int) or limit <= 0:
        return CheckResult(
            "connections", Status.UNKNOWN, f"{conns} connections, max_connections unknown", conns
        )
    share = conns / limit
    text = f"{conns}/{limit} connections ({share:.0%})"
    if share >= th.conn_crit:
        return CheckResult("connections", Status.CRITICAL, f"{text} >= {th.conn_crit:.0%}", conns)
    if share >= th.conn_warn:
        return CheckResult("connections", Status.WARNING, f"{text} >= {th.conn_warn:.0%}", conns)
    return CheckResult("connections", Status.OK, text, conns)


def _rising(name: str, sample: Sample, prev, keys: tuple[str, ...], label: str) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz(name, sample)
    present = [k for k in keys if isinstance(v.get(k), int)]
    if not present:
        return _missing(name, sample, keys[0])
    total = sum(v[k] for k in present)
    if not _same_run(sample, prev):
        return CheckResult(name, Status.OK, f"{total} {label} since start", total)
    rises = {k: v[k] - int(prev.get(k, v[k])) for k in present}
    rising = {k: d for k, d in rises.items() if d > 0}
    if rising:
        since = human_duration(sample.at - float(prev.get("at", sample.at)))
        parts = ", ".join(f"{k} +{d}" for k, d in rising.items())
        return CheckResult(name, Status.WARNING, f"{label} rising: {parts} in the last {since}", total)
    return CheckResult(name, Status.OK, f"no new {label} ({total} since start)", total)


def check_slow_consumers(sample: Sample, prev, exp, th) -> CheckResult:
    return _rising("slow_consumers", sample, prev, ("slow_consumers",), "slow consumers")


def check_stale_connections(sample: Sample, prev, exp, th) -> CheckResult:
    return _rising(
        "stale_connections",
        sample,
        prev,
        ("stale_connections", "stalled_clients"),
        "stale/stalled connections",
    )


def check_memory(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("memory", sample)
    mem = v.get("mem")
    if not isinstance(mem, int):
        return _missing("memory", sample, "mem")
    text = f"RSS {human_bytes(mem)}"
    if mem >= th.mem_crit_bytes:
        return CheckResult("memory", Status.CRITICAL, f"{text} >= {human_bytes(th.mem_crit_bytes)}", mem)
    if mem >= th.mem_warn_bytes:
        return CheckResult("memory", Status.WARNING, f"{text} >= {human_bytes(th.mem_warn_bytes)}", mem)
    return CheckResult("memory", Status.OK, text, mem)


def check_cpu(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("cpu", sample)
    cpu = v.get("cpu")
    if not isinstance(cpu, int | float):
        return _missing("cpu", sample, "cpu")
    cores = v.get("gomaxprocs") or v.get("cores") or 1
    share = cpu / (100.0 * cores)
    text = f"CPU {cpu:g}% ({share:.0%} of {cores} core{'s' if cores != 1 else ''})"
    if share >= th.cpu_crit:
        return CheckResult("cpu", Status.CRITICAL, f"{text} >= {th.cpu_crit:.0%}", cpu)
    if share >= th.cpu_warn:
        return CheckResult("cpu", Status.WARNING, f"{text} >= {th.cpu_warn:.0%}", cpu)
    return CheckResult("cpu", Status.OK, text, cpu)


def live_route_peers(routez: Mapping) -> set[str]:
    """Names of the servers this one has at least one route to (a peer has several with pooling)."""
    names = set()
    for r in routez.get("routes") or ():
        if isinstance(r, dict):
            name = r.get("remote_name") or r.get("remote_id")
            if name:
                names.add(str(name))
    return names


def check_topology(sample: Sample, prev, exp, th) -> CheckResult:
    if exp.peers is None:
        return CheckResult("topology", Status.OK, "standalone (no cluster in the spec)", 0)
    if sample.routez is None:
        err = sample.routez_error
        status = Status.CRITICAL if err and err.transport else Status.UNKNOWN
        return CheckResult("topology", status, f"no /routez: {err.message if err else 'not asked'}")
    live = live_route_peers(sample.routez)
    expected = set(exp.peers)
    missing = sorted(expected - live)
    extra = sorted(live - expected)
    count = f"{len(expected & live)}/{len(expected)} peers routed"
    if missing:
        return CheckResult(
            "topology",
            Status.CRITICAL,
            f"missing routes to {', '.join(missing)} ({count})",
            len(expected & live),
        )
    if extra:
        return CheckResult(
            "topology",
            Status.WARNING,
            f"routes to peers not in the spec: {', '.join(extra)} ({count})",
            len(live),
        )
    return CheckResult("topology", Status.OK, count if expected else "cluster of one", len(live))


def check_config_drift(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("config_drift", sample)
    if "config_digest" not in v:
        return _missing("config_drift", sample, "config_digest")
    running = v.get("config_digest") or ""
    if not running:
        return CheckResult("config_drift", Status.UNKNOWN, "server runs without a config file (empty digest)")
    if exp.digest is None:
        why = exp.digest_error or "no spec to compare with"
        return CheckResult("config_drift", Status.UNKNOWN, f"expected digest unknown: {why}", running)
    if running != exp.digest:
        return CheckResult(
            "config_drift",
            Status.WARNING,
            f"running config {running[:15]}… differs from `seedctl render` now ({exp.digest[:15]}…): "
            "run `seedctl reload`",
            running,
        )
    return CheckResult("config_drift", Status.OK, "running config matches the spec", running)


def check_tls_cert(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("tls_cert", sample)
    raw = v.get("tls_cert_not_after")
    if raw is None:
        if v.get("tls_required"):
            return _missing("tls_cert", sample, "tls_cert_not_after")
        return CheckResult("tls_cert", Status.OK, "no TLS on the client port")
    not_after = parse_time(raw)
    if not_after is None:
        return CheckResult("tls_cert", Status.UNKNOWN, f"unreadable tls_cert_not_after {raw!r}")
    left = (not_after - _now(sample)).total_seconds()
    days = left / 86400
    when = not_after.strftime("%Y-%m-%d")
    if left <= 0:
        return CheckResult("tls_cert", Status.CRITICAL, f"certificate expired on {when}", int(left))
    text = (
        f"certificate expires {when} (in {days:.0f} days)"
        if days >= 2
        else f"certificate expires in {human_duration(left)}"
    )
    if days < th.cert_crit_days:
        return CheckResult("tls_cert", Status.CRITICAL, f"{text} < {th.cert_crit_days:g} days", int(left))
    if days < th.cert_warn_days:
        return CheckResult("tls_cert", Status.WARNING, f"{text} < {th.cert_warn_days:g} days", int(left))
    return CheckResult("tls_cert", Status.OK, text, int(left))


def uptime_seconds(sample: Sample) -> float | None:
    v = sample.varz or {}
    start, now = parse_time(v.get("start")), parse_time(v.get("now"))
    if start is None:
        return None
    return max(0.0, ((now or _now(sample)) - start).total_seconds())


def check_restart(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("restart", sample)
    up = uptime_seconds(sample)
    if up is None:
        return _missing("restart", sample, "start")
    # A restart counts when observed: the start time changed since a previous sample (or did so
    # earlier and was remembered). A first look at a young server is not a restart.
    restarted = bool(
        prev and prev.get("start") and (prev["start"] != v.get("start") or prev.get("restarted"))
    )
    if restarted and up < th.restart_window_s:
        intended, started = parse_time(exp.intended_start), parse_time(v.get("start"))
        if intended is not None and started is not None and abs((intended - started).total_seconds()) <= 30:
            # `seedctl up` started this process on purpose: worth a note, not a warning.
            return CheckResult("restart", Status.OK, f"started by seedctl {human_duration(up)} ago", int(up))
        return CheckResult("restart", Status.WARNING, f"restarted {human_duration(up)} ago", int(up))
    return CheckResult("restart", Status.OK, f"up {human_duration(up)}", int(up))


def check_version_skew(sample: Sample, prev, exp, th) -> CheckResult:
    v = sample.varz
    if v is None:
        return _no_varz("version_skew", sample)
    mine = v.get("version", "?")
    versions = dict(exp.cluster_versions)
    versions[sample.name] = mine
    if len(set(versions.values())) > 1:
        listing = ", ".join(f"{n} {ver}" for n, ver in sorted(versions.items()))
        return CheckResult("version_skew", Status.WARNING, f"versions differ in the cluster: {listing}", mine)
    if len(versions) > 1:
        return CheckResult("version_skew", Status.OK, f"{len(versions)} servers on {mine}", mine)
    return CheckResult("version_skew", Status.OK, f"nats-server {mine}", mine)


def msg_rates(sample: Sample, prev) -> tuple[float, float] | None:
    """Messages in/out per second since the previous sample of the same server process."""
    v = sample.varz
    if not v or not _same_run(sample, prev):
        return None
    dt = sample.at - float(prev.get("at", sample.at))
    if dt <= 0:
        return None
    din = int(v.get("in_msgs", 0)) - int(prev.get("in_msgs", 0))
    dout = int(v.get("out_msgs", 0)) - int(prev.get("out_msgs", 0))
    return max(0, din) / dt, max(0, dout) / dt


def check_federation_traffic(sample: Sample, prev, exp, th) -> CheckResult:
    subs = federation_subscriptions(sample)
    if subs is None:
        err = sample.fed_error
        status = Status.CRITICAL if err and err.transport else Status.UNKNOWN
        return CheckResult("federation_traffic", status, f"no /subsz: {err.message if err else 'not asked'}")
    receivers = len(subs)
    delivered = federation_delivered(sample) or 0
    if receivers == 0:
        return CheckResult(
            "federation_traffic", Status.OK, "no monitor subscribed to tbfed.v1.> here yet", 0.0
        )
    if not _same_run(sample, prev) or "fed_delivered" not in prev:
        return CheckResult(
            "federation_traffic",
            Status.OK,
            f"{receivers} receivers, {delivered} messages delivered so far",
            None,
        )
    dt = sample.at - float(prev.get("at", sample.at))
    fresh = delivered - int(prev["fed_delivered"])
    rate = fresh / dt if dt > 0 else 0.0
    if fresh <= 0 and dt >= th.traffic_quiet_s:
        return CheckResult(
            "federation_traffic",
            Status.WARNING,
            f"{receivers} receivers but no federation message delivered in {human_duration(dt)}",
            0.0,
        )
    return CheckResult(
        "federation_traffic", Status.OK, f"{receivers} receivers, {rate:.1f} msg/s delivered", round(rate, 3)
    )


# ---- the history stream (spec `history:`): JetStream data of /jsz?acc=FED&streams=1&config=1


def stream_detail(jsz: Mapping | None, stream: str) -> dict | None:
    """The /jsz `stream_detail` of `stream` on this server (None: no replica here)."""
    for acc in (jsz or {}).get("account_details") or ():
        for sd in (acc or {}).get("stream_detail") or ():
            if isinstance(sd, dict) and sd.get("name") == stream:
                return sd
    return None


def _jsz_problem(name: str, sample: Sample) -> CheckResult | None:
    """Why this server's JetStream data cannot be judged, as a result (None: it can)."""
    if sample.jsz is None:
        err = sample.jsz_error
        status = Status.CRITICAL if err and err.transport else Status.UNKNOWN
        return CheckResult(name, status, f"no /jsz: {err.message if err else 'not asked'}")
    if sample.jsz.get("disabled") or "config" not in sample.jsz:
        return CheckResult(
            name,
            Status.CRITICAL,
            "JetStream is off on this server: run `seedctl reload` (spec history: needs it)",
        )
    return None


def _not_hosted(name: str, h: HistoryExpect) -> CheckResult:
    if h.hosted_on and h.replicas < len(h.hosted_on) + 1 and h.leader:
        where = ", ".join(h.hosted_on)
        return CheckResult(name, Status.OK, f"no replica on this server ({h.replicas} on {where})", 0)
    return CheckResult(
        name,
        Status.CRITICAL,
        f"stream {h.stream} missing: run `seedctl reload` (it creates the stream)",
        0,
    )


def replica_problem(r: Mapping, silent_s: float) -> str | None:
    """What is wrong with one replica in its stream leader's /jsz view (None: current)."""
    if r.get("offline"):
        return "offline"
    silent = (r.get("active") or 0) / 1e9  # nanoseconds since the leader last heard from it
    if silent >= silent_s:
        return f"not heard from for {human_duration(silent)}"
    if not r.get("current"):
        lag = r.get("lag")
        return f"not current ({lag} operations behind)" if lag else "not current"
    return None


def check_history_stream(sample: Sample, prev, exp, th) -> CheckResult:
    h = exp.history
    problem = _jsz_problem("history_stream", sample)
    if problem:
        return problem
    sd = stream_detail(sample.jsz, h.stream)
    if sd is None:
        return _not_hosted("history_stream", h)
    leader = (sd.get("cluster") or {}).get("leader")
    count = int((sd.get("state") or {}).get("messages") or 0)
    if not leader:
        return CheckResult(
            "history_stream",
            Status.CRITICAL,
            f"{h.stream}: no leader elected (too few replicas up for a quorum): events are not stored",
            count,
        )
    who = "this server" if leader == sample.name else leader
    return CheckResult("history_stream", Status.OK, f"{h.stream}: {count} events, leader {who}", count)


def check_history_replicas(sample: Sample, prev, exp, th) -> CheckResult:
    h = exp.history
    problem = _jsz_problem("history_replicas", sample)
    if problem:
        return problem
    sd = stream_detail(sample.jsz, h.stream)
    if sd is None:
        return _not_hosted("history_replicas", h)
    running = (sd.get("config") or {}).get("num_replicas") or 1
    if running != h.replicas:
        return CheckResult(
            "history_replicas",
            Status.WARNING,
            f"stream has {running} replicas, the spec says {h.replicas}: run `seedctl reload`",
            running,
        )
    if h.replicas == 1:
        return CheckResult(
            "history_replicas", Status.OK, "1 replica (history.replicas: 1, not replicated)", 1
        )
    leader = (sd.get("cluster") or {}).get("leader")
    if not leader:
        return CheckResult("history_replicas", Status.CRITICAL, "no leader: replicas cannot be current", 0)
    if h.leader_replicas is None or h.leader != leader:
        return CheckResult(
            "history_replicas", Status.OK, f"judged on the leader {leader} (not sampled in this run)", None
        )
    peers = {str(r.get("name")): r for r in h.leader_replicas if isinstance(r, Mapping)}

    def behind(name: str, r: Mapping) -> str | None:
        why = replica_problem(r, th.replica_silent_s)
        return f"{name} {why}" if why else None

    if sample.name == leader:
        bad = [why for n, r in sorted(peers.items()) if (why := behind(n, r))]
        placed = len(peers) + 1
        if placed < h.replicas:
            bad.append(f"only {placed} of {h.replicas} replicas placed")
        current = placed - sum(1 for n, r in peers.items() if behind(n, r))
        if bad:
            return CheckResult(
                "history_replicas",
                Status.WARNING,
                f"{current}/{h.replicas} replicas current (leader here): {'; '.join(bad)}",
                current,
            )
        return CheckResult(
            "history_replicas", Status.OK, f"{current}/{h.replicas} replicas current (leader here)", current
        )
    mine = peers.get(sample.name)
    if mine is None:
        return CheckResult(
            "history_replicas", Status.WARNING, f"leader {leader} does not list this server as a replica", 0
        )
    why = replica_problem(mine, th.replica_silent_s)
    if why:
        return CheckResult("history_replicas", Status.WARNING, f"this replica: {why} (leader {leader})", 0)
    return CheckResult("history_replicas", Status.OK, f"this replica is current (leader {leader})", 1)


def check_history_storage(sample: Sample, prev, exp, th) -> CheckResult:
    h = exp.history
    problem = _jsz_problem("history_storage", sample)
    if problem:
        return problem
    sd = stream_detail(sample.jsz, h.stream)
    if sd is None:
        return _not_hosted("history_storage", h)
    state = sd.get("state") or {}
    used = int(state.get("bytes") or 0)
    limit = int((sd.get("config") or {}).get("max_bytes") or 0)
    if limit <= 0:
        limit = h.max_bytes
    share = used / limit
    text = f"{human_bytes(used)} of max_bytes {human_bytes(limit)} ({share:.0%})"
    first = parse_time(state.get("first_ts"))
    if first is not None and first.year > 1 and state.get("messages"):
        held = (_now(sample) - first).total_seconds()
        if held < h.max_age_s:
            text += f", oldest event {human_duration(held)} old (max_age {human_duration(h.max_age_s)})"
    advice = ": older events go before max_age; raise history.max_bytes, then `seedctl reload`"
    if share >= th.history_crit:
        return CheckResult(
            "history_storage", Status.CRITICAL, f"{text} >= {th.history_crit:.0%}{advice}", used
        )
    if share >= th.history_warn:
        return CheckResult(
            "history_storage", Status.WARNING, f"{text} >= {th.history_warn:.0%}{advice}", used
        )
    return CheckResult("history_storage", Status.OK, text, used)


HISTORY_CHECKS: tuple[Callable[..., CheckResult], ...] = (
    check_history_stream, check_history_replicas, check_history_storage,
)  # fmt: skip


CHECKS: tuple[Callable[..., CheckResult], ...] = (
    check_reachable, check_healthz, check_connections, check_slow_consumers, check_stale_connections,
    check_memory, check_cpu, check_topology, check_config_drift, check_tls_cert, check_restart,
    check_version_skew, check_federation_traffic,
)  # fmt: skip


def evaluate(
    sample: Sample, prev: Mapping | None, exp: Expectations, th: Thresholds | None = None
) -> list[CheckResult]:
    """Every check of one server, in CHECK_NAMES order; an unreachable server gets its cause first."""
    th = th or Thresholds()
    if not sample.reachable:
        # One cause, one CRITICAL: the other checks have nothing to judge.
        first = check_reachable(sample, prev, exp, th)
        return [first] + [CheckResult(n, Status.UNKNOWN, SKIPPED_UNREACHABLE) for n in check_names(exp)[1:]]
    results = []
    for check in CHECKS + (HISTORY_CHECKS if exp.history is not None else ()):
        try:
            results.append(check(sample, prev, exp, th))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A field of an unexpected type (old or odd server) must cost one check, not the run.
            name = check.__name__.removeprefix("check_")
            results.append(CheckResult(name, Status.UNKNOWN, f"unexpected endpoint data: {exc}"))
    return results
