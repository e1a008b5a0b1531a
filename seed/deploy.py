"""`seedctl deploy`: run the playbooks in seed/ansible/ (package data) through ansible-runner, streaming progress.

The spec becomes extra variables (`deploy_vars`): per seed server the very template context
`seedctl render` uses (so Ansible writes the same bytes), its monitoring URL, its cluster peers
and its restart facts (the reload-or-restart rule of `seedctl reload`); for the monitors the seed
URLs and the monitor credentials. They go to ansible-playbook in a 0600 file inside a private
temporary directory that is removed afterwards, never on a command line.

Progress is one line per task result and host, a summary table per host at the end, and for a
failure the host, the task and the message. `--check` prints the config diffs instead of
changing anything.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import lifecycle, render, secrets, users
from .spec import Spec
from .users import UserSpec

# Shipped inside the seed package, so a wheel install (not only a checkout) finds its playbooks.
ANSIBLE_DIR = Path(__file__).resolve().parent / "ansible"
PLAYBOOKS = {
    "seed": "seed.yml",
    "monitor": "monitor.yml",
    "rolling-restart": "rolling-restart.yml",
    "rotate-credentials": "rotate-credentials.yml",
}
MONITOR_USER = "monitor"

# Quick, quiet runs: no fact gathering unless a play asks, one connection per task, no retry files.
ANSIBLE_ENV = {
    "ANSIBLE_GATHERING": "explicit",
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
    "ANSIBLE_LOCALHOST_WARNING": "False",
    "ANSIBLE_NOCOLOR": "True",
    "ANSIBLE_FORCE_COLOR": "False",
}

Out = Callable[[str], None]


class DeployError(Exception):
    """Deploy could not start (no playbook, no inventory, no ansible-playbook); the message says why."""


@dataclass
class Failure:
    host: str
    task: str
    message: str


@dataclass
class DeployResult:
    rc: int
    status: str
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    changed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (host, task)
    diffs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def changed(self) -> int:
        return sum(s.get("changed", 0) for s in self.stats.values())


# ---- spec -> extra variables (pure but for the cached hashes in the secrets dir) ----


def seed_servers_vars(
    spec: Spec, hashes: dict[str, str] | None = None, route_pw: str | None = None
) -> dict[str, dict]:
    """Per spec server: the template context, monitoring URL, cluster peers and restart facts."""
    hashes = users.all_hashes(spec) if hashes is None else hashes
    out = {}
    for server in spec.servers:
        peers = []
        if server.cluster_port is not None:
            peers = [s.name for s in spec.servers if s.name != server.name and s.cluster_port is not None]
        out[server.name] = {
            "context": render.context(spec, server, hashes, route_pw),
            "monitor_url": server.monitor_url,
            "peers": peers,
            "restart_facts": lifecycle.restart_facts(spec, server),
        }
    return out


def monitor_user(spec: Spec) -> UserSpec | None:
    """Whose credentials the monitors get: user `monitor`, or, once a rotation replaced it
    (`--playbook rotate-credentials --new-user NAME`), the one monitor user left. Without this a
    `--playbook monitor` run after a rotation found no `monitor` and took the agents' credentials
    away."""
    named = users.find(spec, MONITOR_USER)
    if named is not None:
        return named
    monitors = [u for u in users.effective_users(spec) if u.role == "monitor"]
    return monitors[0] if len(monitors) == 1 else None


def monitor_vars(spec: Spec, user: str | None = None) -> dict:
    """What the monitor_agent role needs from the spec: seed URLs and the monitor credentials."""
    found = monitor_user(spec) if user is None else users.find(spec, user)
    out: dict = {"monitor_agent_seed_urls": list(spec.client_urls)}
    if found is not None:
        out["monitor_agent_credentials"] = users.credentials_text(spec, found)  # user:password or nkey seed
    return out


def deploy_vars(spec: Spec) -> dict:
    """All extra variables of a deploy, derived from the spec."""
    return {"nats_seed_servers": seed_servers_vars(spec), **monitor_vars(spec)}


# --check shows the new user's config line without minting a secret for it. The bcrypt string is
# well-formed but no password hashes to it; the nkey is a valid user public key whose seed was
# thrown away when this constant was made (nobody holds it). Neither is ever applied: --check.
CHECK_PLACEHOLDER_BCRYPT = "$2a$11$" + "." * 53
CHECK_PLACEHOLDER_NKEY = "UAQMDXYJCNEI7RICU47SX7WOHFPN5KLE4NKCKQGRXNN5T4KK5DXO7WW2"


def rotation_vars(
    spec: Spec, old_user: str, new_user: str, grace_period_s: int, *, create: bool = True
) -> dict:
    """Variables of rotate-credentials: seeds with old + new user, then with the new one only.

    NATS user names are unique, so the new credentials are a new monitor user. With `create`
    the new user is registered in the secrets dir (as `seedctl users add` does) and gets a
    password; without (--check) nothing is minted or written: a placeholder that no secret
    matches stands in for its hash (or public nkey) in the diff.
    """
    known = {u.name: u for u in users.effective_users(spec)}
    if old_user not in known:
        raise DeployError(f"--old-user {old_user}: no such user (users: {', '.join(known)})")
    if known[old_user].role != "monitor":
        raise DeployError(f"--old-user {old_user}: role {known[old_user].role}, only monitor users rotate")
    if new_user == old_user:
        raise DeployError("--new-user must differ from --old-user: NATS user names are unique")
    if new_user in known and known[new_user].role != "monitor":
        raise DeployError(f"--new-user {new_user}: already a user with role {known[new_user].role}")
    hashes = users.all_hashes(spec)
    if new_user not in known:
        # The new user authenticates the way the old one did (an nkey monitor stays nkey).
        auth = known[old_user].auth
        if create:
            users.register_user(spec.secrets_dir, new_user, "monitor", auth=auth)
            hashes[new_user] = users.user_hash(spec, UserSpec(new_user, "monitor", auth=auth))
        else:
            hashes[new_user] = CHECK_PLACEHOLDER_NKEY if auth == "nkey" else CHECK_PLACEHOLDER_BCRYPT
            spec = dataclasses.replace(spec, users=spec.users + (UserSpec(new_user, "monitor", auth=auth),))
    transition = seed_servers_vars(spec, hashes)
    final = copy.deepcopy(transition)
    for entry in final.values():
        ctx = entry["context"]
        ctx["fed_users"] = [u for u in ctx["fed_users"] if u["name"] != old_user]
    new_vars = monitor_vars(spec, new_user) if create or new_user in known else {}
    return {
        "nats_seed_servers_transition": transition,
        "nats_seed_servers": final,
        "rotate_grace_period_s": int(grace_period_s),
        **new_vars,
    }


def route_rotation_vars(spec: Spec, *, create: bool = True) -> dict:
    """Variables of rotate-credentials for the cluster's route password.

    nats-server accepts exactly one route user/password (cluster.authorization), so seeds cannot
    accept the old and the new one at once. Instead each seed, one at a time, starts accepting
    only the new password while it dials every peer not yet moved with the old one and every
    moved peer with the new one: each pair of seeds always has a route one side accepts.
    `nats_seed_route_rotation` gives both route URLs per peer (the play picks one per peer);
    `nats_seed_servers` is the end state (new password everywhere), converged one seed at a
    time afterwards. The new password waits in route.secret.next until `finish_route_rotation`.
    """
    if not spec.clustered:
        raise DeployError(f"{spec.path}: no cluster: there is no route password to rotate")
    if spec.route_auth is None:
        raise DeployError(
            f"{spec.path}: cluster.auth is none: set route authentication up with a deploy first"
        )
    if spec.route_auth.password_file is not None:
        raise DeployError(
            f"{spec.path}: cluster.auth.password_file is set: rotate that file's password yourself "
            "(the seeds cannot accept two route passwords at once)"
        )
    old = render.route_password(spec, create=False)
    new = (
        secrets.route_password(spec.secrets_dir, create=True, file_name=secrets.ROUTE_SECRET_NEXT)
        if create
        else secrets.generate_password()
    )
    if new == old:
        raise DeployError(f"{spec.secrets_dir / secrets.ROUTE_SECRET_NEXT} holds the current route password")
    rotation = {
        server.name: {
            peer.name: {"old": render.route_url(spec, peer, old), "new": render.route_url(spec, peer, new)}
            for peer in spec.servers
            if peer.name != server.name and peer.cluster_port is not None
        }
        for server in spec.servers
        if server.cluster_port is not None
    }
    return {"nats_seed_servers": seed_servers_vars(spec, route_pw=new), "nats_seed_route_rotation": rotation}


def finish_route_rotation(spec: Spec) -> str:
    """After a successful route rotation: the new password becomes the cluster's."""
    secrets.promote_route_password(spec.secrets_dir)
    return (
        f"route rotation done: every seed accepts and dials only the new route password ({spec.secrets_dir})"
    )


def finish_rotation(spec: Spec, old_user: str) -> str:
    """After a successful rotation: forget the old user where seedctl manages it; say what is left."""
    if old_user in users.registered_users(spec.secrets_dir):
        users.remove(spec.secrets_dir, old_user)
        return f"rotation done: user {old_user} removed from the seeds and from {spec.secrets_dir}"
    users.remove(spec.secrets_dir, old_user)
    return (
        f"rotation done: the seeds no longer accept {old_user}. Remove it from the users of {spec.path} "
        f"now, or the next `seedctl deploy` brings it back."
    )


# ---- event stream -> terminal ----


def _task_name(ev: dict) -> str:
    role = ev.get("role")
    task = ev.get("task") or ev.get("name") or "?"
    return f"{role} : {task}" if role else task


def failure_message(res: dict) -> str:
    """The useful words of a failed result: msg, then the command's own stderr/stdout."""
    parts = []
    msg = str(res.get("msg") or "").strip()
    if res.get("attempts"):
        # An `until` that never held (a health gate): its last "OK (123 bytes)" says nothing.
        parts.append(f"gave up after {res['attempts']} tries" + (f": {msg}" if msg and not msg.startswith("OK") else ""))
    elif msg:
        parts.append(msg)
    for key in ("stderr", "stdout", "module_stderr"):
        text = str(res.get(key) or "").strip()
        if text and text not in parts:
            parts.append(text)
            break
    if not parts and res.get("results"):
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                return failure_message(item)
    return " | ".join(parts) or json.dumps(res)[:500]


_SSH_NOISE = re.compile(r"Warning: Permanently added [^\n]*?known hosts\.\s*")


def one_line(message: str, limit: int = 300) -> str:
    """A message on one line, without ssh's known-hosts chatter (the error is what follows it)."""
    text = " ".join(_SSH_NOISE.sub("", message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Reporter:
    """Turns ansible-runner events into terminal lines and collects the outcome."""

    STATUS_WIDTH = 11

    def __init__(self, out: Out, *, check: bool = False, show_skipped: bool = False):
        self.out = out
        self.check = check
        self.show_skipped = show_skipped
        self.result = DeployResult(rc=-1, status="starting")
        self._host_width = 12
        self._retries: dict[tuple[str, str], int] = {}

    def _line(self, status: str, host: str, task: str, extra: str = "") -> None:
        self._host_width = max(self._host_width, len(host))
        line = f"  {status:<{self.STATUS_WIDTH}} {host:<{self._host_width}}  {task}"
        self.out(line + (f"  ({extra})" if extra else ""))

    def event(self, ev: dict) -> bool:
        """ansible-runner's event_handler: print the event; True keeps it in the artifacts."""
        kind = ev.get("event")
        data = ev.get("event_data") or {}
        host = data.get("host") or ""
        if kind == "playbook_on_play_start":
            self.out(f"PLAY {data.get('play') or data.get('name') or ''}".rstrip())
        elif kind == "runner_on_ok":
            res = data.get("res") or {}
            changed = bool(res.get("changed"))
            task = _task_name(data)
            if changed:
                self.result.changed_tasks.append((host, task))
            note = ""
            if data.get("task_action") in ("debug", "ansible.builtin.debug") and res.get("msg"):
                note = str(res["msg"])  # the role's own explanations (e.g. why a restart)
            self._line("changed" if changed else "ok", host, task, note)
            if changed and self.check:
                self._diff(host, res)
        elif kind == "runner_on_failed":
            res = data.get("res") or {}
            if data.get("ignore_errors"):
                self._line("ignored", host, _task_name(data))
            else:
                message = failure_message(res)
                self.result.failures.append(Failure(host, _task_name(data), message))
                self._line("FAILED", host, _task_name(data), message.splitlines()[0][:200] if message else "")
        elif kind == "runner_on_unreachable":
            # One line naming the host and the SSH error (a wrong key, a host that does not answer).
            message = one_line(failure_message(data.get("res") or {}))
            self.result.failures.append(Failure(host, _task_name(data), "unreachable: " + message))
            self._line("UNREACHABLE", host, _task_name(data), message)
        elif kind == "runner_on_skipped" and self.show_skipped:
            self._line("skipped", host, _task_name(data))
        elif kind == "runner_retry":
            key = (host, _task_name(data))
            n = self._retries[key] = self._retries.get(key, 0) + 1
            if n == 1 or n % 10 == 0:  # waiting is normal; say so without flooding the terminal
                left = data.get("retries_left", "?")
                self._line("waiting", host, _task_name(data), f"{left} tries left")
        elif kind == "playbook_on_stats":
            self.result.stats = _stats(data)
        elif kind in ("error", "warning") and ev.get("stdout"):
            self.out(ev["stdout"].strip())
        return True

    def _diff(self, host: str, res: dict) -> None:
        diffs = res.get("diff") or []
        if isinstance(diffs, dict):
            diffs = [diffs]
        for d in diffs:
            before, after = d.get("before"), d.get("after")
            if not isinstance(before, str) or not isinstance(after, str) or before == after:
                continue
            text = "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=f"{host}:{d.get('before_header') or 'before'}",
                    tofile=f"{host}:{d.get('before_header') or 'after'} (new)",
                )
            )
            text = redact(text)
            self.result.diffs.append(text)
            for line in text.rstrip("\n").splitlines():
                self.out("    " + line)

    def status(self, data: dict, runner_config=None) -> None:
        """ansible-runner's status_handler."""
        self.result.status = data.get("status", self.result.status)


_ROUTE_USERINFO = re.compile(r"(nats-route://[^:/@\"\s]+:)[^@\"\s]+@")
_CLEAR_PASSWORD = re.compile(r"(password:\s*\")(?!\$2)[^\"]*(\")")


def redact(text: str) -> str:
    """A config diff fit for a terminal: route passwords (the only ones in clear) become ***."""
    return _CLEAR_PASSWORD.sub(r"\1***\2", _ROUTE_USERINFO.sub(r"\1***@", text))


def _stats(data: dict) -> dict[str, dict[str, int]]:
    keys = {
        "ok": "ok",
        "changed": "changed",
        "failures": "failed",
        "dark": "unreachable",
        "skipped": "skipped",
    }
    keys |= {"rescued": "rescued", "ignored": "ignored"}
    hosts: set[str] = set()
    for k in keys:
        hosts |= set((data.get(k) or {}).keys())
    return {h: {name: int((data.get(k) or {}).get(h, 0)) for k, name in keys.items()} for h in sorted(hosts)}


def summary_table(result: DeployResult) -> list[str]:
    """The per-host recap as aligned text lines."""
    cols = ("ok", "changed", "failed", "unreachable", "skipped")
    width = max([4] + [len(h) for h in result.stats])
    lines = ["  ".join([f"{'host':<{width}}"] + [f"{c:>11}" for c in cols])]
    for host, s in result.stats.items():
        lines.append("  ".join([f"{host:<{width}}"] + [f"{s.get(c, 0):>11}" for c in cols]))
    return lines


# ---- running ----


def runner_env() -> dict[str, str]:
    """Environment for ansible-playbook: this venv's bin first on PATH, quick and quiet settings."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**ANSIBLE_ENV, "PATH": venv_bin + (os.pathsep + path if path else "")}


def find_playbook(name: str, ansible_dir: Path | None = None) -> Path:
    ansible_dir = Path(ansible_dir or ANSIBLE_DIR)
    file = PLAYBOOKS.get(name, name)
    path = ansible_dir / file
    if not path.is_file():
        choices = ", ".join(PLAYBOOKS)
        raise DeployError(f"playbook {name!r} not found at {path} (choices: {choices})")
    return path


def run_playbook(
    playbook: str,
    inventory: Path,
    extravars: dict,
    *,
    check: bool = False,
    limit: str | None = None,
    out: Out = print,
    ansible_dir: Path | None = None,
    forks: int = 10,
    verbosity: int = 0,
    show_skipped: bool = False,
    keep_artifacts: Path | None = None,
) -> DeployResult:
    """Run one playbook through ansible_runner with our extravars; prints progress through `out`."""
    import ansible_runner  # deferred: importing it costs ~0.3 s on every seedctl start

    inventory = Path(inventory).resolve()
    if not inventory.exists():
        raise DeployError(f"inventory not found: {inventory}")
    check_inventory(inventory)
    book = find_playbook(playbook, ansible_dir)
    env = runner_env()
    if not shutil.which("ansible-playbook", path=env["PATH"]):
        raise DeployError("ansible-playbook not found: pip install ansible-core into this venv")

    reporter = Reporter(out, check=check, show_skipped=show_skipped)
    private = Path(tempfile.mkdtemp(prefix="seedctl-deploy-"))
    try:
        os.chmod(private, 0o700)
        env["ANSIBLE_LOCAL_TEMP"] = str(private / "tmp")  # controller-side scratch dies with the run
        # Secrets (hashes, the monitor password) travel in a 0600 file, not on a command line.
        secrets.write_private(private / "env" / "extravars", json.dumps(extravars))
        cmdline = "--check --diff" if check else ""
        if verbosity:
            cmdline += " -" + "v" * verbosity
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(book.parent),
            playbook=book.name,
            inventory=str(inventory),
            limit=limit,
            cmdline=cmdline.strip() or None,
            envvars=env,
            forks=forks,
            quiet=True,
            suppress_env_files=True,
            event_handler=reporter.event,
            status_handler=reporter.status,
        )
        reporter.result.rc = runner.rc if runner.rc is not None else 1
        reporter.result.status = runner.status
        if reporter.result.rc == 0 and not reporter.result.stats:
            # ansible-playbook calls a run on zero hosts a success; an operator would not.
            groups = {
                "seed.yml": "nats_seeds",
                "monitor.yml": "monitors",
                "rotate-credentials.yml": "nats_seeds",
            }
            group = groups.get(book.name, "nats_seeds")
            where = f" matching --limit {limit}" if limit else ""
            reporter.result.rc = 1
            reporter.result.failures.append(
                Failure("-", book.name, f"no host ran: {inventory} has no host in group {group}{where}")
            )
        if keep_artifacts is not None:
            shutil.copytree(private / "artifacts", keep_artifacts, dirs_exist_ok=True)
        if not reporter.result.stats and runner.rc != 0:
            # ansible-playbook died before any host ran (bad inventory, syntax error): show its words.
            with contextlib.suppress(Exception):
                text = runner.stdout.read().strip()
                if text:
                    reporter.result.failures.append(Failure("-", "ansible-playbook", text[-2000:]))
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return reporter.result


def check_inventory(path: Path) -> None:
    """A YAML inventory that does not parse stops here with its line: ansible-playbook would only
    warn, fall back to an empty inventory and "succeed" on zero hosts."""
    if not path.is_file() or path.suffix.lower() not in (".yml", ".yaml"):
        return  # INI inventories, directories and scripts are ansible's to judge
    import yaml

    class _Loader(yaml.SafeLoader):  # Ansible's own tags (!vault, !unsafe) are valid in an inventory
        pass

    def _any_tag(loader, _suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_scalar(node)

    _Loader.add_multi_constructor("!", _any_tag)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (safe loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"cannot read inventory {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or exc
        raise DeployError(f"{where}: the inventory is not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise DeployError(
            f"{path}: the inventory must be a mapping of groups (e.g. nats_seeds: {{hosts: ...}})"
        )


def report(result: DeployResult, out: Out = print) -> None:
    """Summary table, then every failure with host, task and message."""
    if result.stats:
        out("")
        for line in summary_table(result):
            out(line)
    if result.failures:
        out("")
        out(f"FAILED ({len(result.failures)}):")
        for f in result.failures:
            out(f"  host {f.host}, task {f.task!r}:")
            for line in f.message.splitlines() or [""]:
                out(f"    {line}")


def deploy(
    spec: Spec,
    inventory: Path,
    playbook: str = "seed",
    *,
    check: bool = False,
    limit: str | None = None,
    out: Out = print,
    extra: dict | None = None,
    **kwargs,
) -> DeployResult:
    """Run `playbook` against `inventory` with the spec's variables; returns the outcome."""
    extravars = deploy_vars(spec) | (extra or {})
    result = run_playbook(playbook, inventory, extravars, check=check, limit=limit, out=out, **kwargs)
    report(result, out)
    return result
