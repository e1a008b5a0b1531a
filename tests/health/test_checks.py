"""The checks as pure functions, fed with JSON captured from a real nats-server 2.15.1
(tests/health/captured/: a TLS 2-node cluster n1+n2 with max_connections 10, a bare single server,
the cluster after n2 stopped, and a JetStream server whose /healthz answered 503)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from seed.health import CHECK_NAMES, CheckResult, Expectations, Sample, Status, Thresholds, evaluate, worst
from seed.health.runner import ServerReport, remember
from seed.health.sample import counters
from seed.health.units import parse_time
from seed.monitoring import EndpointError

CAPTURED = Path(__file__).parent / "captured"


def load(name: str) -> dict:
    return json.loads((CAPTURED / name).read_text())


def sample(
    varz: dict | None = None, *, routez=None, healthz=(200, {"status": "ok"}), subs=None, at=None, **kw
):
    at = at if at is not None else (parse_time(varz["now"]).timestamp() if varz else 0.0)
    fed = {"subscriptions_list": subs or [], "total": len(subs or [])}
    return Sample(
        name="n1",
        url="http://127.0.0.1:8222",
        at=at,
        varz=varz,
        routez=routez,
        healthz=healthz,
        fed_subsz=fed,
        **kw,
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


CLUSTER = Expectations(
    peers=("n2",), digest="sha256:c46939d9f3b218ebfb68db942dcc23957f0414d9651256d90144da974449e5ff"
)


def test_healthy_cluster_member_is_all_ok():
    res = by_name(
        evaluate(sample(load("varz_cluster_tls.json"), routez=load("routez_cluster.json")), None, CLUSTER)
    )
    assert list(res) == list(CHECK_NAMES)
    assert {n: r.status for n, r in res.items() if r.status is not Status.OK} == {}
    assert res["topology"].reason.startswith("1/1 peers routed")
    assert res["config_drift"].reason == "running config matches the spec"
    assert "3000-01-01" in res["tls_cert"].reason


def test_topology_names_the_missing_peer_when_routes_are_gone():
    s = sample(load("varz_peer_down.json"), routez=load("routez_peer_down.json"))
    res = by_name(evaluate(s, None, CLUSTER))
    assert res["topology"].status is Status.CRITICAL
    assert "missing routes to n2" in res["topology"].reason
    # nats-server's own /healthz stays ok without routes: that is why topology is a separate check
    assert res["healthz"].status is Status.OK


def test_topology_pooled_routes_count_once_and_extra_peers_warn():
    routez = load("routez_cluster.json")
    assert len(routez["routes"]) == 4  # route pooling: 3 + the system account's, all to n2
    res = by_name(
        evaluate(sample(load("varz_cluster_tls.json"), routez=routez), None, Expectations(peers=()))
    )
    assert res["topology"].status is Status.WARNING and "not in the spec: n2" in res["topology"].reason
    standalone = by_name(evaluate(sample(load("varz_single.json"), routez=routez), None, Expectations()))
    assert standalone["topology"].status is Status.OK and "standalone" in standalone["topology"].reason


@pytest.mark.parametrize(
    ("connections", "expected"),
    [(0, Status.OK), (7, Status.OK), (8, Status.WARNING), (9, Status.WARNING), (10, Status.CRITICAL)],
)
def test_connections_against_max_connections(connections, expected):
    varz = load("varz_cluster_tls.json")  # max_connections: 10
    varz["connections"] = connections
    res = by_name(evaluate(sample(varz, routez=load("routez_cluster.json")), None, CLUSTER))
    assert res["connections"].status is expected
    assert res["connections"].reason.startswith(f"{connections}/10 connections")


def test_healthz_unavailable_is_critical_with_the_servers_words():
    body = load("healthz_unavailable.json")
    res = by_name(evaluate(sample(load("varz_single.json"), healthz=(503, body)), None, Expectations()))
    assert res["healthz"].status is Status.CRITICAL
    assert (
        res["healthz"].reason == "/healthz unavailable (HTTP 503): JetStream is still recovering meta layer"
    )


def test_drift_warns_when_the_spec_renders_another_digest():
    exp = Expectations(peers=("n2",), digest="sha256:" + "0" * 64)
    res = by_name(
        evaluate(sample(load("varz_cluster_tls.json"), routez=load("routez_cluster.json")), None, exp)
    )
    assert res["config_drift"].status is Status.WARNING
    assert "seedctl reload" in res["config_drift"].reason
    no_conf = by_name(evaluate(sample(load("varz_single.json")), None, exp))  # started without -c
    assert no_conf["config_drift"].status is Status.UNKNOWN
    unknown = by_name(evaluate(sample(load("varz_single.json")), None, Expectations(digest_error="boom")))
    assert unknown["config_drift"].status is Status.UNKNOWN


@pytest.mark.parametrize(
    ("days", "expected"),
    [(400, Status.OK), (20, Status.WARNING), (6, Status.CRITICAL), (-1, Status.CRITICAL)],
)
def test_tls_certificate_expiry_thresholds(days, expected):
    varz = load("varz_cluster_tls.json")
    s = sample(varz, routez=load("routez_cluster.json"))
    # the captured certificate is valid until 3000: move the clock instead of the certificate
    s.at = parse_time(varz["tls_cert_not_after"]).timestamp() - days * 86400 - 60
    res = by_name(evaluate(s, None, CLUSTER))
    assert res["tls_cert"].status is expected, res["tls_cert"].reason


def test_tls_on_but_field_missing_on_old_server_is_unknown():
    varz = load("varz_cluster_tls.json")
    del varz["tls_cert_not_after"], varz["config_digest"], varz["stalled_clients"]
    res = by_name(evaluate(sample(varz, routez=load("routez_cluster.json")), None, CLUSTER))
    assert res["tls_cert"].status is Status.UNKNOWN and "tls_cert_not_after" in res["tls_cert"].reason
    assert res["config_drift"].status is Status.UNKNOWN and "config_digest" in res["config_drift"].reason
    assert res["stale_connections"].status is Status.OK  # stale_connections alone is still judged


def test_slow_consumers_and_stale_rising_since_previous_sample():
    varz = load("varz_cluster_tls.json")
    first = sample(varz, routez=load("routez_cluster.json"))
    prev = counters(first)
    later = copy.deepcopy(varz)
    later["slow_consumers"] += 3
    later["stalled_clients"] += 1
    second = sample(later, routez=load("routez_cluster.json"), at=first.at + 10)
    res = by_name(evaluate(second, prev, CLUSTER))
    assert res["slow_consumers"].status is Status.WARNING and "+3" in res["slow_consumers"].reason
    assert (
        res["stale_connections"].status is Status.WARNING
        and "stalled_clients +1" in res["stale_connections"].reason
    )
    # after a restart the counters start again from zero: not "rising"
    later["start"] = "2030-01-01T00:00:00Z"
    res = by_name(
        evaluate(sample(later, routez=load("routez_cluster.json"), at=first.at + 10), prev, CLUSTER)
    )
    assert res["slow_consumers"].status is Status.OK


def test_restart_observed_warns_for_the_window_then_clears():
    varz = load("varz_single.json")
    first = sample(varz)
    memory = remember({}, [ServerReport("n1", "", first, [])])
    assert by_name(evaluate(first, None, Expectations()))["restart"].status is Status.OK  # first look
    restarted = copy.deepcopy(varz)
    restarted["start"] = restarted["now"]
    s2 = sample(restarted, at=first.at + 5)
    assert by_name(evaluate(s2, memory["n1"], Expectations()))["restart"].status is Status.WARNING
    memory = remember(memory, [ServerReport("n1", "", s2, [])])
    s3 = sample(restarted, at=first.at + 20)  # same process, still young: still a warning
    assert by_name(evaluate(s3, memory["n1"], Expectations()))["restart"].status is Status.WARNING
    assert (
        by_name(evaluate(s3, memory["n1"], Expectations(), Thresholds(restart_window_s=0)))["restart"].status
        is Status.OK
    )


def test_version_skew_inside_a_cluster():
    s = sample(load("varz_cluster_tls.json"), routez=load("routez_cluster.json"))
    res = by_name(evaluate(s, None, Expectations(peers=("n2",), cluster_versions={"n2": "2.10.22"})))
    assert res["version_skew"].status is Status.WARNING
    assert "n1 2.15.1" in res["version_skew"].reason and "n2 2.10.22" in res["version_skew"].reason


def test_federation_traffic_needs_messages_when_receivers_listen():
    varz = load("varz_single.json")
    subs = [{"subject": "tbfed.v1.>", "msgs": 50, "cid": 15}]
    first = sample(varz, subs=subs)
    prev = counters(first)
    assert by_name(evaluate(first, None, Expectations()))["federation_traffic"].status is Status.OK
    quiet = sample(varz, subs=subs, at=first.at + 120)
    res = by_name(evaluate(quiet, prev, Expectations()))["federation_traffic"]
    assert res.status is Status.WARNING and "1 receivers but no federation message" in res.reason
    busy = sample(varz, subs=[{"subject": "tbfed.v1.>", "msgs": 170, "cid": 15}], at=first.at + 120)
    res = by_name(evaluate(busy, prev, Expectations()))["federation_traffic"]
    assert res.status is Status.OK and res.value == pytest.approx(1.0)


def test_unreachable_is_one_critical_and_the_rest_skipped():
    s = Sample(
        name="n1", url="http://x", at=0.0, varz_error=EndpointError("refused", "connection refused (x)")
    )
    results = evaluate(s, None, CLUSTER)
    assert results[0].status is Status.CRITICAL and "connection refused" in results[0].reason
    assert all(r.status is Status.UNKNOWN for r in results[1:])
    assert worst(r.status for r in results) is Status.CRITICAL


def test_garbage_field_types_cost_one_check_not_the_run():
    varz = load("varz_single.json")
    varz["connections"] = "many"
    varz["mem"] = None
    varz["start"] = 17
    res = by_name(evaluate(sample(varz, at=1.0), None, Expectations()))
    assert res["connections"].status is Status.UNKNOWN
    assert res["memory"].status is Status.UNKNOWN
    assert res["restart"].status is Status.UNKNOWN
    assert res["healthz"].status is Status.OK


def test_memory_and_cpu_thresholds():
    varz = load("varz_single.json")
    varz["mem"], varz["cpu"] = 3 * 1024**3, 190.0  # 2 cores: 95 % of the machine
    res = by_name(evaluate(sample(varz), None, Expectations()))
    assert res["memory"].status is Status.CRITICAL and "3.0 GiB" in res["memory"].reason
    assert res["cpu"].status is Status.CRITICAL
    varz["mem"], varz["cpu"] = 1536 * 1024**2, 160.0
    res = by_name(evaluate(sample(varz), None, Expectations()))
    assert res["memory"].status is Status.WARNING and res["cpu"].status is Status.WARNING
