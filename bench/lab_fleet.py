"""The operator's path on a fleet lab (tests/lab), timed: lab up/down of 5 hosts, converge of
3 seeds + 2 monitors over SSH from bare hosts, the no-change re-run, events lost during a rolling
restart under 20 events/s (the lab publisher's and the agents' own), and failover after a seed's
link is cut (p50/max over every agent that failed over, N runs).
Needs root (systemd-nspawn); tears its lab down even on failure.

    .venv/bin/python bench/lab_fleet.py [--runs 3] [--no-ops]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from tests import lab as lablib  # noqa: E402
from tests.lab.fleet import make_fleet, replay_sample_log  # noqa: E402
from tests.lab.test_operations import _agents_delivered_everything, _now  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def agent_state(fleet, name):
    try:
        return httpx.get(fleet.agent_url(name) + "/api/federation/status", timeout=1).json()["state"]
    except (httpx.HTTPError, ValueError, KeyError):
        return "UNANSWERED"


def failover_after_cut(fleet, seed: str, timeout: float = 180) -> dict:
    """Cut `seed` off; per agent that was on it, seconds until it is CONNECTED again after leaving
    CONNECTED."""
    on_it = [m for m in fleet.monitors if fleet.seed_of(m) == seed]
    left: dict[str, bool] = dict.fromkeys(on_it, False)
    done: dict[str, float] = {}
    with fleet.traffic() as traffic:
        time.sleep(2)
        t0 = time.monotonic()
        fleet.lab.cut(seed)
        try:
            while len(done) < len(on_it) and time.monotonic() - t0 < timeout:
                for name in on_it:
                    if name in done:
                        continue
                    state = agent_state(fleet, name)
                    if state != "CONNECTED":
                        left[name] = True
                    elif left[name]:
                        done[name] = time.monotonic() - t0
                time.sleep(0.1)
        finally:
            time.sleep(max(0.0, 20 - (time.monotonic() - t0)))  # the cut lasts at least 20 s
            fleet.lab.heal()
        time.sleep(5)
    rep = traffic.report()
    return {"agents": done, "traffic": rep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-ops", action="store_true", help="only lab up/down and converge figures")
    args = ap.parse_args()
    nats_server = str(Path(sys.executable).parent / "nats-server")
    figures: dict[str, list[float]] = {k: [] for k in ("up", "down", "converge", "rerun", "rr_lost", "rr_agents_lost", "failover")}
    for run in range(args.runs):
        t_up, lab = timed(lambda: lablib.up(5))
        try:
            figures["up"].append(t_up)
            with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
                fleet = make_fleet(lab, Path(tmp), nats_server)
                try:
                    def converge(fleet=fleet):
                        for book in ("seed", "monitor"):
                            if book == "monitor":
                                for name in fleet.monitors:
                                    replay_sample_log(fleet.lab, name)
                            r = fleet.seedctl("deploy", "--playbook", book)
                            assert r.returncode == 0, r.stdout[-2000:]
                    t, _ = timed(converge)
                    figures["converge"].append(t)
                    t, _ = timed(converge)
                    figures["rerun"].append(t)
                    print(f"run {run + 1}: up {t_up:.1f} s, converge {figures['converge'][-1]:.1f} s, "
                          f"re-run {t:.1f} s", flush=True)
                    if not args.no_ops:
                        since = _now()
                        with fleet.node_activity(fleet.monitors) as written, fleet.traffic() as traffic:
                            time.sleep(2)
                            r = fleet.seedctl("deploy", "--playbook", "rolling-restart")
                            assert r.returncode == 0, r.stdout[-2000:]
                            time.sleep(2)
                        rep = traffic.report()
                        figures["rr_lost"].append(len(rep.lost))
                        try:
                            agents = _agents_delivered_everything(fleet, written, since)
                            figures["rr_agents_lost"].append(0)
                        except AssertionError as e:
                            agents = f"NOT ALL: {e}"
                            figures["rr_agents_lost"].append(1)
                        print(f"  rolling restart: {rep.summary()}; agents' own events {agents}; "
                              f"agents {rep.agent_states}", flush=True)
                        victim = fleet.seed_of("lab4") or "lab1"
                        fo = failover_after_cut(fleet, victim)
                        figures["failover"] += list(fo["agents"].values())
                        print(f"  cut {victim} 20 s: agents back after {fo['agents']}; traffic {fo['traffic'].summary()}",
                              flush=True)
                finally:
                    fleet.mirror.close()
        finally:
            t_down, _ = timed(lab.down)
            figures["down"].append(t_down)
    for k, v in figures.items():
        if v:
            print(f"{k:14s} median (p50) {statistics.median(v):7.2f}  min {min(v):7.2f}  max {max(v):7.2f}  (n={len(v)})")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
