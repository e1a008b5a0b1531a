"""Run a Markdown document's shell blocks as an operator would type them: docs that cannot drift.

The contract (docs/README's "Docs are tested" says the same):
- Every ```bash block runs, in document order, in ONE bash session (exports, variables and `cd`
  carry over) with `set -e -o pipefail`: a failing command fails the run, naming its document line.
- `<!-- docs-test: skip REASON -->` just before a block: not run; REASON says why it cannot run on
  one machine (Docker, real hosts, an interactive passphrase...). A skip without a reason is refused.
- A line that starts a server (`monitor-agent run`, `seedctl console`, `seedctl demo`) runs in the
  background; the runner waits until the first http:// URL it prints answers. A later line that
  starts the same server again (same program and MONITOR_PORT) stops the older one first, as an
  operator would with Ctrl-C. Servers keep running after the document until `Run.stop()`.
- The session is a fresh sandbox: a copy of the repository's configs/ and seed/ansible/ (the
  inventories the documents name; the roles themselves run from the installed package), PATH with this venv first, and no
  SEEDCTL_SPEC, DATA_DIR, FEDERATION_*, MONITOR_* or ENABLE_* variables (but MONITOR_PORT, below).
- The documents' fixed ports (4222, 6222, 8222, 8300, 8090-8099) are mapped to free ones, in the
  commands and in the copied files (and the agent's default 8090 through MONITOR_PORT), so runs
  never meet other programs on this machine;
  placeholders (`/path/to/...`) are mapped to sandbox paths the test gives.
- `clear-federation-data` asks for confirmation: the runner answers yes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE_RE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE_RE = re.compile(r"^<!--\s*docs-test:\s*(\w[\w-]*)\s*(.*?)\s*-->\s*$")
PORT_RE = re.compile(r"(?<![\d.])(4222|6222|8222|8300|809\d)(?![\d])")
ASSIGN_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*")
SERVERS = ("monitor-agent run", "seedctl console", "seedctl demo")
SHELLS = ("bash", "sh", "shell", "console")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lines: list[str]
    skip: str | None = None  # the reason, when marked skip


@dataclass
class Run:
    doc: Path
    sandbox: Path
    ports: dict[int, int]
    returncode: int
    output: str
    logs: Path
    elapsed_s: float
    blocks_run: int
    blocks_skipped: list[Block] = field(default_factory=list)

    def port(self, documented: int) -> int:
        """The free port that stood in for a port written in the document."""
        return self.ports[documented]

    def server_log(self, needle: str) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")) if needle in p.name
        )

    def stop(self) -> None:
        """Stop every server the document started (SIGTERM to its process group, then SIGKILL)."""
        pids_file = self.logs / "pids"
        pids = [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    os.killpg(pid, 0)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pids_file.unlink(missing_ok=True)
        # What the document started detached (`seedctl up`'s nats-servers): everything whose
        # command line or working directory is inside the sandbox.
        import psutil

        inside = str(self.sandbox.resolve())
        mine = []
        for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
            with contextlib.suppress(psutil.Error):
                cmd, cwd = " ".join(proc.info["cmdline"] or ()), proc.info["cwd"] or ""
                if proc.pid != os.getpid() and (inside in cmd or cwd.startswith(inside)):
                    mine.append(proc)
                    proc.terminate()
        _gone, alive = psutil.wait_procs(mine, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def blocks(doc: Path) -> list[Block]:
    """The shell blocks of `doc` with their skip directives; ValueError on a skip without a reason."""
    out: list[Block] = []
    text = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    pending: str | None = None
    while i < len(text):
        line = text[i]
        d = DIRECTIVE_RE.match(line.strip())
        if d:
            kind, reason = d.groups()
            if kind != "skip":
                raise ValueError(f"{doc}:{i + 1}: unknown docs-test directive {kind!r}")
            if not reason:
                raise ValueError(f"{doc}:{i + 1}: docs-test: skip needs a reason")
            pending = reason
            i += 1
            continue
        m = FENCE_RE.match(line)
        if m:
            start, body = i + 1, []
            i += 1
            while i < len(text) and not text[i].startswith("```"):
                body.append(text[i])
                i += 1
            if m.group(1) in SHELLS:
                out.append(Block(doc, start, body, pending))
            pending = None
        elif line.strip():
            pending = None if not line.strip().startswith("<!--") else pending
        i += 1
    return out


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """(document line, command) with `\\` continuations joined; comment-only and blank lines dropped."""
    out: list[tuple[int, str]] = []
    buf, first = "", 0
    for n, raw in enumerate(block.lines, block.line + 1):
        if not buf:
            first = n
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        buf += raw
        if buf.strip() and not buf.strip().startswith("#"):
            out.append((first, buf.strip()))
        buf = ""
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_key(command: str) -> tuple[str, str] | None:
    rest = command[ASSIGN_RE.match(command).end() :]
    for prog in SERVERS:
        if rest == prog or rest.startswith(prog + " "):
            port = re.search(r"(?:^|\s)MONITOR_PORT=(\S+)", command[: len(command) - len(rest)])
            return prog, port.group(1) if port else ""
    return None


def _map_ports(text: str, ports: dict[int, int]) -> str:
    def sub(m: re.Match) -> str:
        documented = int(m.group(1))
        if documented not in ports:
            ports[documented] = free_port()
        return str(ports[documented])

    return PORT_RE.sub(sub, text)


def make_sandbox(root: Path, ports: dict[int, int]) -> Path:
    """A bare working directory with the repository's configs/ and seed/ansible/, ports mapped."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "configs", root / "configs", ignore=shutil.ignore_patterns("secrets", "rendered"))
    ansible = root / "seed" / "ansible"
    shutil.copytree(ROOT / "seed" / "ansible", ansible, ignore=shutil.ignore_patterns("local-hosts"))
    for path in [*root.joinpath("configs").glob("*.y*ml"), *ansible.glob("inventory*.yml")]:
        path.write_text(_map_ports(path.read_text(), ports))
    return root


def script(doc_blocks: list[Block], ports: dict[int, int], placeholders: dict[str, str], logs: Path) -> str:
    """The bash session: every runnable block, each line tagged with its document line."""
    py = shlex.quote(sys.executable)
    out = [
        "set -e -o pipefail",
        "set -m  # each background server in its own process group",
        f"__LOGS={shlex.quote(str(logs))}",
        "declare -A __JOBS",
        "__at=start",
        "trap 'echo \"docs-test: FAILED at $__at\" >&2' ERR",
        "__bg() {",
        "  local key=$1 n=$2 cmd; cmd=$(cat)",
        '  if [ -n "${__JOBS[$key]:-}" ]; then',
        '    kill -TERM -- "-${__JOBS[$key]}" 2>/dev/null || true',
        '    wait "${__JOBS[$key]}" 2>/dev/null || true',
        "  fi",
        '  ( eval "$cmd" ) > "$__LOGS/$n.log" 2>&1 < /dev/null &',
        "  __JOBS[$key]=$!",
        '  echo "$!" >> "$__LOGS/pids"',
        f'  {py} -m tests.docs.ready "$__LOGS/$n.log" "$!"',
        "}",
    ]
    n = 0
    for block in doc_blocks:
        if block.skip:
            continue
        for line_no, command in logical_lines(block):
            for placeholder, value in placeholders.items():
                command = command.replace(placeholder, value)
            command = _map_ports(command, ports)
            where = f"{block.doc.name}:{line_no}"
            out.append(f"__at={shlex.quote(where + ': ' + command[:120])}")
            out.append(f'echo "[${{EPOCHREALTIME%.*}}]" {shlex.quote("$ " + command)}')
            key = _server_key(command)
            if key is not None:
                n += 1
                name = f"{n:02d}-{key[0].split()[-1]}{'-' + key[1] if key[1] else ''}"
                out.append(
                    f"__bg {shlex.quote('|'.join(key))} {name} <<'__DOCS_CMD__'\n{command}\n__DOCS_CMD__"
                )
            elif "clear-federation-data" in command:
                out.append(f"<<<y {command}")  # before the command: a trailing comment must not eat it
            else:
                out.append(command)
    out.append("echo 'docs-test: every block ran'")
    return "\n".join(out) + "\n"


def clean_env(sandbox: Path, ports: dict[int, int]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEDERATION_", "MONITOR_", "ENABLE_", "SEEDCTL_", "PYTEST", "NODE_LOG"))
        and k not in ("DATA_DIR", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(ROOT)  # the ready-waiter below lives in tests/docs
    env["HOME"] = str(sandbox / "home")
    # The agent's default port, 8090, mapped like a written one (the documents' URLs say 8090).
    env["MONITOR_PORT"] = _map_ports("8090", ports)
    (sandbox / "home").mkdir(exist_ok=True)
    return env


def run(doc: Path, sandbox: Path, *, placeholders: dict[str, str] | None = None, timeout: float = 600) -> Run:
    """Run every runnable shell block of `doc` in a fresh sandbox; servers keep running (Run.stop())."""
    doc_blocks = blocks(doc)
    ports: dict[int, int] = {}
    make_sandbox(sandbox, ports)
    logs = sandbox / ".docs-test"
    logs.mkdir()
    text = script(doc_blocks, ports, placeholders or {}, logs)
    (logs / "session.sh").write_text(text)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", str(logs / "session.sh")], cwd=sandbox, env=clean_env(sandbox, ports), capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:  # still a Run, so the caller's stop() cleans up
        out = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else exc.stdout or ""
        )
        proc = subprocess.CompletedProcess(exc.cmd, 124, out, f"docs-test: timed out after {timeout} s")
    result = Run(
        doc, sandbox, ports, proc.returncode, proc.stdout + proc.stderr, logs, time.monotonic() - started,
        sum(1 for b in doc_blocks if not b.skip), [b for b in doc_blocks if b.skip],
    )  # fmt: skip
    if proc.returncode != 0:
        servers = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(logs.glob("*.log"))
        )
        result.output += "\n" + servers
    return result
