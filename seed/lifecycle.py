"""Local up / status / reload / down of real nats-server processes.

State of each server lives in `<state_dir>/<server name>/`:
  nats-server.conf   the live config (0600)       nats-server.pid   pid of the running process
  nats-server.log    the server's own log         applied.json      digest + listen facts at start
`up` returns once every server answers /healthz ok. `reload` validates, refuses what nats-server
cannot reload ("restart required"), sends SIGHUP and proves the change through /varz config_digest.
`down` asks for lame-duck mode (SIGUSR2) and waits for the exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from monitor_agent.timestamps import rfc3339

from . import natsbin, render, secrets, supervisor, users
from .monitoring import EndpointError, Monitor
from .spec import ServerSpec, Spec

log = logging.getLogger(__name__)

PID_FILE = "nats-server.pid"
LOG_FILE = "nats-server.log"
APPLIED_FILE = "applied.json"

Progress = Callable[[str], None]

# Popen objects of servers started by this process, so they are reaped (no zombies posing as alive).
_children: dict[int, subprocess.Popen] = {}


class LifecycleError(Exception):
    """A server could not be started, reloaded or stopped; the message says why (with its log line)."""


class RestartRequired(LifecycleError):
    """The change touches settings nats-server cannot reload."""

    def __init__(self, name: str, changes: list[str]):
        self.name = name
        self.changes = changes
        super().__init__(f"{name}: restart required: {'; '.join(changes)} (run: seedctl down && seedctl up)")


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    digest: str | None
    client_url: str
    monitor_url: str
    log_path: Path
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "pid": self.pid,
            "running": self.running,
            "healthy": self.healthy,
            "config_digest": self.digest,
            "client_url": self.client_url,
            "monitor_url": self.monitor_url,
            "log": str(self.log_path),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ReloadResult:
    name: str
    changed: bool
    digest: str


# ---- paths and process facts ----


def server_dir(spec: Spec, name: str, state_dir: Path | None = None) -> Path:
    return Path(state_dir or spec.state_dir) / name


def conf_path(spec: Spec, name: str, state_dir: Path | None = None) -> Path:
    return server_dir(spec, name, state_dir) / render.CONF_NAME


def log_path(spec: Spec, name: str, state_dir: Path | None = None) -> Path:
    return server_dir(spec, name, state_dir) / LOG_FILE


def read_pid(spec: Spec, name: str, state_dir: Path | None = None) -> int | None:
    try:
        return int((server_dir(spec, name, state_dir) / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_running(pid: int | None) -> bool:
    """True if `pid` is a live nats-server (not a zombie, not a recycled pid)."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return "nats-server" in proc.name() or any("nats-server" in a for a in proc.cmdline()[:1])
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def running_pid(spec: Spec, name: str, state_dir: Path | None = None) -> int | None:
    pid = read_pid(spec, name, state_dir)
    return pid if is_running(pid) else None


def restart_facts(spec: Spec, server: ServerSpec) -> dict[str, str | None]:
    """Settings nats-server cannot change on reload (server/reload.go), as comparable strings."""
    js = render.jetstream_context(spec, server)
    return {
        "server name": server.name,
        "client listen": f"{server.host}:{server.client_port}",
        "monitoring listen": f"{server.monitor_host}:{server.monitor_port}",
        "cluster listen": f"{server.host}:{server.cluster_port}" if server.cluster_port else None,
        "cluster name": spec.cluster_name if server.cluster_port else None,
        "system account": "SYS" if spec.system_account else None,
        "gateway": None,
        "websocket": None,
        # nats-server cannot reload to or from an account resolver (static <-> operator mode).
        "account resolver": spec.auth.resolver if spec.auth.operator else None,
        # Spec `history:` (JetStream): nats-server refuses another store directory or a lower store
        # limit on reload; turning history on or off and raising the limit reload (restart_changes).
        "jetstream store": js["store_dir"] if js else None,
        "jetstream max store": str(js["max_file_store"]) if js else None,
    }


def restart_changes(old: dict, new: dict) -> list[str]:
    """Human descriptions of differing restart facts, e.g. `client listen 127.0.0.1:4222 -> 127.0.0.1:4223`."""
    out = []
    for key, value in new.items():
        before: Any = old.get(key)  # applied.json as written (a None here is skipped below)
        if before == value:
            continue
        if key.startswith("jetstream ") and (before is None or value is None):
            continue  # history turned on or off: JetStream is enabled or disabled by a reload
        if key == "jetstream max store" and int(value) > int(before):
            continue  # a higher store limit reloads; only a lower one needs a restart
        out.append(f"{key} {before or 'none'} -> {value or 'none'}")
    return out


def _read_applied(spec: Spec, name: str, state_dir: Path | None) -> dict:
    try:
        return json.loads((server_dir(spec, name, state_dir) / APPLIED_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_applied(
    spec: Spec, server: ServerSpec, state_dir: Path | None, digest: str, *, started: bool = False
) -> None:
    data = {"digest": digest, "facts": restart_facts(spec, server)}
    # When seedctl itself started the process: `seedctl health` does not warn about that restart.
    started_at = (
        rfc3339()
        if started
        else _read_applied(spec, server.name, state_dir).get("started_at")
    )
    if started_at:
        data["started_at"] = started_at
    secrets.write_private(server_dir(spec, server.name, state_dir) / APPLIED_FILE, json.dumps(data, indent=2))


def intended_start(spec: Spec, name: str, state_dir: Path | None = None) -> str | None:
    """When `seedctl up` last started server `name` on this machine (UTC, ISO), if it did."""
    value = _read_applied(spec, name, state_dir).get("started_at")
    return value if isinstance(value, str) else None


def log_errors(path: Path, offset: int = 0, limit: int = 3) -> list[str]:
    """The server's own [ERR]/[FTL] lines (or last lines) written after `offset`."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    errors = [ln.strip() for ln in lines if "[ERR]" in ln or "[FTL]" in ln or ln.startswith("nats-server:")]
    return (errors or [ln.strip() for ln in lines if ln.strip()])[-limit:]


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# ---- monitoring endpoints ----


def healthz(server: ServerSpec, timeout: float = 1.0) -> bool:
    """The server's /healthz answers ok."""
    return Monitor(server.monitor_url, timeout).healthy()


def varz(server: ServerSpec, timeout: float = 2.0) -> dict | None:
    """The server's /varz, or None if it gives none."""
    try:
        return Monitor(server.monitor_url, timeout).varz()
    except EndpointError:
        return None


# ---- up ----


def _selected(spec: Spec, names: list[str] | tuple[str, ...] | None) -> list[ServerSpec]:
    if not names:
        return list(spec.servers)
    return [spec.server(n) for n in names]  # KeyError names the unknown server


def prepare(spec: Spec, server: ServerSpec, state_dir: Path | None, binary: str | None, hashes=None) -> str:
    """Render the server's config into its state dir and validate it; returns the digest."""
    path = conf_path(spec, server.name, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets.write_private(path, render.render_server(spec, server, hashes))
    return natsbin.validate(path, binary)


def _spawn(spec: Spec, server: ServerSpec, state_dir: Path | None, binary: str | None) -> int:
    exe = natsbin.find_binary(binary)
    d = server_dir(spec, server.name, state_dir)
    child = supervisor.Child(
        f"nats-server {server.name}",
        [exe, "-c", str(d / render.CONF_NAME), "-l", str(d / LOG_FILE)],
        d / LOG_FILE,
        die_with_parent=False,  # survives seedctl exiting; its own session: not killed by the terminal's ^C
    ).start()
    assert child.popen is not None
    _children[child.popen.pid] = child.popen
    (d / PID_FILE).write_text(f"{child.popen.pid}\n")
    return child.popen.pid


def up(
    spec: Spec,
    names: list[str] | None = None,
    state_dir: Path | None = None,
    binary: str | None = None,
    timeout: float = 20.0,
    progress: Progress | None = None,
) -> list[ServerStatus]:
    """Start the selected servers (all by default) and wait until each answers /healthz ok."""
    say = progress or (lambda _msg: None)
    servers = _selected(spec, names)
    hashes = users.all_hashes(spec)
    started: list[tuple[ServerSpec, int, int]] = []
    try:
        for server in servers:
            if running_pid(spec, server.name, state_dir):
                live = conf_path(spec, server.name, state_dir)
                stale = live.is_file() and live.read_text(encoding="utf-8") != render.render_server(
                    spec, server, hashes
                )
                hint = "; its config differs from the spec: seedctl reload" if stale else ""
                say(f"{server.name}: already running (pid {read_pid(spec, server.name, state_dir)}){hint}")
                continue
            digest = prepare(spec, server, state_dir, binary, hashes)
            offset = _log_size(log_path(spec, server.name, state_dir))
            pid = _spawn(spec, server, state_dir, binary)
            _write_applied(spec, server, state_dir, digest, started=True)
            say(
                f"{server.name}: started pid {pid}, client {server.client_url}, monitoring {server.monitor_url}"
            )
            started.append((server, pid, offset))
        deadline = time.monotonic() + timeout
        for server, pid, offset in started:
            _wait_healthy(spec, server, pid, offset, state_dir, deadline)
            say(f"{server.name}: healthy")
    except BaseException:
        for server, pid, _ in started:
            supervisor.stop_pid(pid, 5.0, is_running)
            _clear_pid(spec, server.name, state_dir)
        raise
    return status(spec, [s.name for s in servers], state_dir)


def _wait_healthy(
    spec: Spec, server: ServerSpec, pid: int, offset: int, state_dir: Path | None, deadline: float
) -> None:
    logp = log_path(spec, server.name, state_dir)
    while True:
        if not is_running(pid):
            why = " | ".join(log_errors(logp, offset)) or "no log output"
            raise LifecycleError(f"{server.name}: nats-server exited at start: {why}")
        if healthz(server, timeout=0.5):
            return
        if time.monotonic() > deadline:
            why = " | ".join(log_errors(logp, offset)) or "no error in its log"
            raise LifecycleError(f"{server.name}: no /healthz ok from {server.monitor_url} in time ({why})")
        time.sleep(0.02)


# ---- status ----


def status(spec: Spec, names: list[str] | None = None, state_dir: Path | None = None) -> list[ServerStatus]:
    out = []
    for server in _selected(spec, names):
        pid = read_pid(spec, server.name, state_dir)
        running = is_running(pid)
        healthy = running and healthz(server)
        info = varz(server) if running else None
        detail = ""
        if pid and not running:
            detail = "stale pid file (server not running)"
        elif running and not healthy:
            detail = "running but /healthz is not ok"
        out.append(
            ServerStatus(
                name=server.name,
                pid=pid if running else None,
                running=running,
                healthy=healthy,
                digest=(info or {}).get("config_digest"),
                client_url=server.client_url,
                monitor_url=server.monitor_url,
                log_path=log_path(spec, server.name, state_dir),
                detail=detail,
            )
        )
    return out


# ---- reload ----


def reload(
    spec: Spec,
    names: list[str] | None = None,
    state_dir: Path | None = None,
    binary: str | None = None,
    timeout: float = 10.0,
    progress: Progress | None = None,
    via: str = "signal",
) -> list[ReloadResult]:
    """Render, validate, refuse restart-only changes, trigger the reload, then prove it by
    config_digest. `via`: signal (SIGHUP to the local process, /varz polled) or nats
    (`$SYS.REQ.SERVER.<id>.RELOAD` as the admin user, VARZ over $SYS polled). With nats a server
    not run from this state dir is reloaded too: its config must already be in place on its
    host (e.g. by Ansible); the digest proves it is the one the spec renders."""
    if via not in ("signal", "nats"):
        raise LifecycleError(f"reload via {via!r}: use signal or nats")
    say = progress or (lambda _msg: None)
    servers = _selected(spec, names)
    hashes = users.all_hashes(spec)
    plans: list[tuple[ServerSpec, int | None, Path | None, str, str]] = []
    candidate: Path | None  # the rendered config waiting beside the live one (None: a remote server)
    # Check every server before touching any, so a refused change leaves all of them untouched.
    for server in servers:
        pid = running_pid(spec, server.name, state_dir)
        if pid is None and via == "signal":
            raise LifecycleError(
                f"{server.name}: not running (start it with: seedctl up --server {server.name})"
            )
        d = server_dir(spec, server.name, state_dir)
        new_text = render.render_server(spec, server, hashes)
        candidate = d / (render.CONF_NAME + ".new")
        secrets.write_private(candidate, new_text)
        try:
            digest = natsbin.validate(candidate, binary)
            if pid is not None:
                applied = _read_applied(spec, server.name, state_dir)
                changes = restart_changes(applied.get("facts", {}), restart_facts(spec, server))
                if changes:
                    raise RestartRequired(server.name, changes)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        if pid is None:  # a remote server (via nats): its config is already in place there
            candidate.unlink(missing_ok=True)
            candidate = None
        plans.append((server, pid, candidate, new_text, digest))
    if via == "nats":
        from .health.runner import run_sync

        return run_sync(lambda: _reload_nats(spec, plans, state_dir, timeout, say))

    results = []
    for server, pid, candidate, new_text, digest in plans:
        assert pid is not None and candidate is not None  # via signal: every server runs here
        live = conf_path(spec, server.name, state_dir)
        old_text = live.read_text(encoding="utf-8")
        info = varz(server) or {}
        if new_text == old_text and info.get("config_digest") == digest:
            candidate.unlink(missing_ok=True)
            say(f"{server.name}: unchanged ({digest})")
            results.append(ReloadResult(server.name, False, digest))
            continue
        logp = log_path(spec, server.name, state_dir)
        offset = _log_size(logp)
        os.replace(candidate, live)
        os.kill(pid, signal.SIGHUP)
        if not _wait_digest(server, digest, timeout):
            secrets.write_private(live, old_text)  # the file again matches what the server runs
            why = " | ".join(log_errors(logp, offset)) or "no error in its log"
            raise LifecycleError(
                f"{server.name}: reload not applied, /varz config_digest never became {digest}: {why}"
            )
        _write_applied(spec, server, state_dir, digest)
        say(f"{server.name}: reloaded, config_digest {digest} verified")
        results.append(ReloadResult(server.name, True, digest))
    return results


async def _reload_nats(spec: Spec, plans, state_dir: Path | None, timeout: float, say: Progress):
    from .health import sysreq

    try:
        nc = await sysreq.connect(spec, min(timeout, 5.0))
    except sysreq.SysError as exc:
        for _server, _pid, candidate, _text, _digest in plans:
            if candidate is not None:
                candidate.unlink(missing_ok=True)
        raise LifecycleError(f"reload via nats: {exc}") from None
    try:
        names = {p[0].name for p in plans}
        found = (await sysreq.ping(nc, "VARZ", None, names, min(timeout, 3.0))).by_name
        missing = sorted(names - found.keys())
        if missing:
            for _server, _pid, candidate, _text, _digest in plans:
                if candidate is not None:
                    candidate.unlink(missing_ok=True)
            raise LifecycleError(
                f"reload via nats: {', '.join(missing)} did not answer $SYS.REQ.SERVER.PING.VARZ "
                "(down, or not routed to the seed seedctl reached): nothing was reloaded"
            )
        results = []
        for server, pid, candidate, new_text, digest in plans:
            server_id = found[server.name]["server"]["id"]
            running = (found[server.name].get("data") or {}).get("config_digest")
            live = conf_path(spec, server.name, state_dir)
            old_text = live.read_text(encoding="utf-8") if candidate is not None else None
            if running == digest and (candidate is None or new_text == old_text):
                if candidate is not None:
                    candidate.unlink(missing_ok=True)
                say(f"{server.name}: unchanged ({digest})")
                results.append(ReloadResult(server.name, False, digest))
                continue
            if candidate is not None:
                os.replace(candidate, live)
            try:
                await sysreq.request_one(nc, server_id, "RELOAD", None, timeout)
                proven = await _wait_digest_nats(nc, server_id, digest, timeout)
            except sysreq.SysError as exc:
                proven, why = False, str(exc)
            else:
                why = "its running config is not the one rendered from the spec"
            if not proven:
                if old_text is not None:
                    secrets.write_private(live, old_text)
                raise LifecycleError(
                    f"{server.name}: reload via nats not applied, config_digest never became {digest}: {why}"
                )
            if pid is not None:
                _write_applied(spec, server, state_dir, digest)
            say(f"{server.name}: reloaded via nats, config_digest {digest} verified")
            results.append(ReloadResult(server.name, True, digest))
        return results
    finally:
        await nc.close()


async def _wait_digest_nats(nc, server_id: str, digest: str, timeout: float) -> bool:
    import asyncio

    from .health import sysreq

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await sysreq.request_one(nc, server_id, "VARZ", None, max(0.5, deadline - time.monotonic()))
        if (body.get("data") or {}).get("config_digest") == digest:
            return True
        await asyncio.sleep(0.05)
    return False


def _wait_digest(server: ServerSpec, digest: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (varz(server) or {}).get("config_digest") == digest:
            return True
        time.sleep(0.05)
    return False


# ---- down ----


def _clear_pid(spec: Spec, name: str, state_dir: Path | None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (server_dir(spec, name, state_dir) / PID_FILE).unlink()


def down(
    spec: Spec,
    names: list[str] | None = None,
    state_dir: Path | None = None,
    timeout: float | None = None,
    lame_duck: bool = True,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Stop the selected servers: lame duck (SIGUSR2) and wait; SIGTERM/SIGKILL only as a fallback."""
    say = progress or (lambda _msg: None)
    if timeout is None:
        timeout = spec.limits.lame_duck_duration_s + 5.0
    outcome: dict[str, str] = {}
    pids = {}
    for server in _selected(spec, names):
        pid = running_pid(spec, server.name, state_dir)
        if pid is None:
            _clear_pid(spec, server.name, state_dir)
            outcome[server.name] = "not running"
            say(f"{server.name}: not running")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR2 if lame_duck else signal.SIGTERM)
        say(f"{server.name}: {'lame duck mode' if lame_duck else 'stopping'} (pid {pid})")
        pids[server.name] = pid
    for name, pid in pids.items():
        if supervisor.wait_gone(pid, timeout, is_running):
            how = "stopped (lame duck)" if lame_duck else "stopped"
        else:
            how = supervisor.stop_pid(pid, 5.0, is_running)
        _clear_pid(spec, name, state_dir)
        outcome[name] = how
        say(f"{name}: {how}")
    return outcome
