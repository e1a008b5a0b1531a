"""Enrollment figures: operator (JWT) mode against static NKEY users, real nats-servers on loopback.

    python bench/enrollment.py                  # runs 5, approvals 1000, failover N 1000, 3 rounds
    python bench/enrollment.py --runs 3 --approvals 200 --n 200     # quicker

Reports (medians where repeated):
  approve_to_connected_s   seedctl's approve (verify request, sign user JWT, write files) until a
                           real agent started on that file is CONNECTED (no seed reload)
  revoke_to_disconnected_s seedctl's revoke (account JWT with the revocation, pushed through $SYS)
                           until the connected agent is cut off (target <= 5 s)
  approvals_s              N approvals in one account (registry + per-node files, fsync'd)
  failover                 N clients on seed-1 of a 2-server cluster; seed-1 stops (no lame duck);
                           seconds until all N are connected to seed-2: JWT users (operator mode)
                           and the shared NKEY monitor user (static mode), alternating rounds in
                           the same run, medians and their ratio
  restart (--restart-only)  N clients on one seed that stops and starts again (seedctl's lifecycle):
                           seconds until all N are back, JWT users vs NKEY, alternating rounds
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor_agent import natsjwt  # noqa: E402
from monitor_agent.agent import Agent  # noqa: E402
from monitor_agent.config import load_config  # noqa: E402
from monitor_agent.enrollment import build_request, dumps  # noqa: E402
from monitor_agent.identity import load_identity  # noqa: E402
from monitor_agent.protocol import FederationState  # noqa: E402
from seed import enroll, lifecycle, users  # noqa: E402
from seed.spec import load_spec  # noqa: E402

FAILOVER_LIMIT_S = 300


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_spec(root: Path, servers: int, operator: bool) -> object:
    entries = []
    for i in range(1, servers + 1):
        e = {"name": f"seed-{i}", "host": "127.0.0.1", "client_port": port(), "monitor_port": port()}
        if servers > 1:
            e["cluster_port"] = port()
        entries.append(e)
    data: dict = {
        "name": "tbfed-bench",
        "servers": entries,
        "limits": {"max_connections": 20000, "lame_duck_duration_s": 30, "lame_duck_grace_period_s": 1},
        "secrets_dir": "secrets",
        "state_dir": "state",
        "rendered_dir": "rendered",
    }
    if operator:
        data["auth"] = {"mode": "operator"}
    else:
        data["users"] = [{"name": "admin", "role": "admin"}, {"name": "monitor", "role": "monitor", "auth": "nkey"}]
    root.mkdir(parents=True, exist_ok=True)
    (root / "seed.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(root / "seed.yaml")


def wait(pred, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"timeout waiting for {what}")
        time.sleep(0.005)
    return time.monotonic() - t0


def node(root: Path):
    ident = load_identity(root / "data")
    req = root / "request.json"
    req.write_text(dumps(build_request(ident, "EU-WEST")))
    return ident, req


def agent_for(spec, data_dir: Path, cred: Path) -> Agent:
    env = {
        "DATA_DIR": str(data_dir),
        "NODE_LOG_SOURCE": "none",
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": spec.servers[0].client_url,
        "FEDERATION_CREDENTIALS": str(cred),
        "FEDERATION_RECONNECT_TIMEOUT": "500",
        "MONITOR_PORT": str(port()),
    }
    agent = Agent(load_config(env))
    agent.start()
    return agent


def single_seed_figures(root: Path, runs: int, approvals: int) -> dict:
    spec = make_spec(root / "op1", 1, operator=True)
    lifecycle.up(spec)
    try:
        approve_s, revoke_s = [], []
        for i in range(runs):
            ident, req = node(root / f"a{i}")
            t0 = time.monotonic()
            approval = enroll.approve(spec, req, root / f"a{i}" / "out")
            agent = agent_for(spec, root / f"a{i}" / "data", approval.credentials)
            try:
                wait(lambda a=agent: a.federation.state == FederationState.CONNECTED, 20, "CONNECTED")
                approve_s.append(time.monotonic() - t0)
                t1 = time.monotonic()
                enroll.revoke(spec, ident.node_id)
                wait(lambda a=agent: a.federation.state != FederationState.CONNECTED, 20, "cut off")
                revoke_s.append(time.monotonic() - t1)
            finally:
                agent.stop()
            log(f"run {i + 1}: approve->connected {approve_s[-1]:.3f}s, revoke->disconnected {revoke_s[-1]:.3f}s")
        reqs = [node(root / f"b{i}")[1] for i in range(approvals)]
        t0 = time.monotonic()
        for i, req in enumerate(reqs):
            enroll.approve(spec, req, root / "b-out" / str(i))
        approvals_s = time.monotonic() - t0
        log(f"{approvals} approvals: {approvals_s:.2f}s")
        return {
            "approve_to_connected_s": round(statistics.median(approve_s), 3),
            "revoke_to_disconnected_s": round(statistics.median(revoke_s), 3),
            "revoke_max_s": round(max(revoke_s), 3),
            "approvals": approvals,
            "approvals_s": round(approvals_s, 2),
            "per_approval_ms": round(approvals_s / approvals * 1000, 1),
        }
    finally:
        lifecycle.down(spec, timeout=10, lame_duck=False)


async def failover(spec, n: int, auth_for, restart: bool = False) -> dict:
    """n clients on seed-1 (seed-2 listed second); stop seed-1; time until all are on seed-2."""
    urls = [s.client_url for s in spec.servers]
    moved = asyncio.Event()
    state = {"n": 0}

    async def on_reconnect():
        state["n"] += 1
        if state["n"] == n:
            moved.set()

    async def quiet(_e):
        pass

    sem = asyncio.Semaphore(16)

    async def one(i):
        async with sem:
            return await nats.connect(
                servers=urls, dont_randomize=True, allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=1, connect_timeout=10, reconnected_cb=on_reconnect, error_cb=quiet,
                **auth_for(i),
            )

    t0 = time.monotonic()
    clients = await asyncio.gather(*(one(i) for i in range(n)))
    connect_s = time.monotonic() - t0
    await asyncio.sleep(1)
    t0 = time.monotonic()
    await asyncio.to_thread(lifecycle.down, spec, [spec.servers[0].name], None, 10.0, False)
    if restart:  # one seed: the same server comes back and every client reconnects to it
        await asyncio.to_thread(lifecycle.up, spec)
    try:
        await asyncio.wait_for(moved.wait(), FAILOVER_LIMIT_S)
        all_s: float | None = round(time.monotonic() - t0, 2)
    except TimeoutError:  # a finding, not a crash: report how many made it
        all_s = None
    on_seed2 = sum(1 for c in clients if c.is_connected)
    closed = sum(1 for c in clients if c.is_closed)
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {"connect_all_s": round(connect_s, 2), "all_failed_over_s": all_s, "connected": on_seed2, "closed": closed}


def jwt_login(ident, token: str) -> dict:
    """nats-py options of an enrolled node logging in with its user JWT, signing with its own key."""
    return {
        "user_jwt_cb": lambda: bytearray(token.encode()),
        "signature_cb": lambda nonce: base64.b64encode(ident.sign_raw(nonce.encode())),
    }


def failover_figures(root: Path, n: int, rounds: int) -> dict:
    """Both clusters up at once; rounds alternate NKEY, JWT, NKEY, JWT ... (the machine's load
    drifts: alternating keeps the comparison fair); medians and their ratio."""
    static = make_spec(root / "static", 2, operator=False)
    op = make_spec(root / "op2", 2, operator=True)
    lifecycle.up(static)
    lifecycle.up(op)
    try:
        # Static mode: the shared monitor user with its nkey (the baseline bench/federation_scale.py uses).
        seed = users.credentials_text(static, static.user("monitor"))
        # Operator mode: n enrolled nodes, each its own JWT user signing with its own key.
        creds = []
        for i in range(n):
            ident, req = node(root / f"f{i}")
            approval = enroll.approve(op, req, root / "f-out" / str(i))
            token = next(ln for ln in approval.credentials.read_text().splitlines() if ln.startswith("eyJ"))
            creds.append((ident, token))

        def jwt_auth(i):
            return jwt_login(*creds[i])

        runs: dict[str, list[dict]] = {"nkey": [], "jwt": []}
        for r in range(rounds):
            for label, spec, auth_for in (
                ("nkey", static, lambda i: {"nkeys_seed_str": seed}),
                ("jwt", op, jwt_auth),
            ):
                lifecycle.up(spec)  # seed-1 back (the other one is still running)
                time.sleep(2)  # routes re-formed
                runs[label].append(asyncio.run(failover(spec, n, auth_for)))
                log(f"round {r + 1} {label}: {runs[label][-1]}")
    finally:
        lifecycle.down(static, timeout=10, lame_duck=False)
        lifecycle.down(op, timeout=10, lame_duck=False)
    out: dict = {}
    for label, results in runs.items():
        # A round that did not finish within FAILOVER_LIMIT_S counts as that limit in the median.
        times = [x["all_failed_over_s"] if x["all_failed_over_s"] is not None else FAILOVER_LIMIT_S for x in results]
        out[label] = {
            "all_failed_over_s_runs": [x["all_failed_over_s"] for x in results],
            "timeouts": sum(1 for x in results if x["all_failed_over_s"] is None),
            "all_failed_over_s_median": statistics.median(times),
            "connect_all_s_median": statistics.median(x["connect_all_s"] for x in results),
        }
    out["ratio_jwt_over_nkey"] = round(
        out["jwt"]["all_failed_over_s_median"] / out["nkey"]["all_failed_over_s_median"], 2
    )
    return out


def restart_figures(root: Path, n: int, rounds: int) -> dict:
    """n clients on a single seed that stops and starts again: JWT users vs NKEY, alternating."""
    static = make_spec(root / "static1", 1, operator=False)
    op = make_spec(root / "op1r", 1, operator=True)
    lifecycle.up(static)
    lifecycle.up(op)
    try:
        seed = users.credentials_text(static, static.user("monitor"))
        keyed = []
        operator_material = enroll.operator(op, create=False)
        for i in range(n):  # JWTs signed directly: the approvals are timed elsewhere
            ident = load_identity(root / f"r{i}")
            key = natsjwt.user_public_key(ident.public_raw)
            keyed.append((ident, enroll.issue_user_jwt(op, ident.node_id, key, 90, op=operator_material)))

        def jwt_auth(i):
            return jwt_login(*keyed[i])

        runs: dict[str, list] = {"nkey": [], "jwt": []}
        for r in range(rounds):
            for label, spec, auth_for in (("nkey", static, lambda i: {"nkeys_seed_str": seed}), ("jwt", op, jwt_auth)):
                runs[label].append(asyncio.run(failover(spec, n, auth_for, restart=True)))
                log(f"restart round {r + 1} {label}: {runs[label][-1]}")
    finally:
        lifecycle.down(static, timeout=10, lame_duck=False)
        lifecycle.down(op, timeout=10, lame_duck=False)
    return {
        label: {
            "all_reconnected_s_runs": [x["all_failed_over_s"] for x in results],
            "all_reconnected_s_median": statistics.median(
                x["all_failed_over_s"] if x["all_failed_over_s"] is not None else FAILOVER_LIMIT_S for x in results
            ),
        }
        for label, results in runs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--approvals", type=int, default=1000)
    ap.add_argument("--n", type=int, default=1000, help="clients in the failover comparison")
    ap.add_argument("--rounds", type=int, default=3, help="failover rounds per kind (alternating)")
    ap.add_argument("--restart-only", action="store_true", help="only the single-seed restart comparison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-enroll-") as tmp:
        root = Path(tmp)
        if args.restart_only:
            print(json.dumps({"restart_n": args.n, **restart_figures(root, args.n, args.rounds)}, indent=2))
            return
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
            **single_seed_figures(root, args.runs, args.approvals),
            "failover_n": args.n,
            **failover_figures(root, args.n, args.rounds),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
