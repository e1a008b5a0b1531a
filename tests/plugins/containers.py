"""Real containers with podman: the base image, the agent image, the Docker Engine API, node containers.

    podman (session) -> Podman: runs `podman ...` with the project's CONTAINERS_CONF
        (tests/containers/containers.conf unless CONTAINERS_CONF is set); every container and
        volume the tests make carries the label TEST_LABEL=<this session> and is removed at the
        end of the session, even when a test fails.
    base_image (session) -> "localhost/debian:bookworm-slim", built from the Debian archive with
        debootstrap the first time and reused by every later run (podman's image store is the cache).
    agent_image (session) -> the project's Dockerfile built on that base (`--format docker`).
    engine_api (function) -> EngineApi: `podman system service` on a fresh unix socket (the
        Docker Engine API), stopped and its socket removed at teardown.
    node_container (function) -> make(name, *, tty=False) -> NodeContainer: a container that
        prints what the test `write`s to it (stdout or stderr), like a runner node printing its log.

A missing podman/runc/debootstrap fails the test in CI and skips it elsewhere (require_tool).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.tools import require_tool, wait_for

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "tests" / "containers" / "containers.conf"
BASE_IMAGE = "localhost/debian:bookworm-slim"
AGENT_IMAGE = "localhost/truebit-monitor-agent:test"
TEST_LABEL = "org.truebit-federation.test"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

# What the official debian:*-slim images leave out (docs, manuals, translations), kept out of
# every package installed later in the image too.
DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
APT_SOURCES = """\
deb {mirror} bookworm main
deb {mirror} bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""


class Podman:
    """`podman` with the tests' CONTAINERS_CONF; containers/volumes made via `run` are labelled."""

    def __init__(self, binary: str, session: str):
        self.binary = binary
        self.session = session
        self.env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
        self.label = f"{TEST_LABEL}={session}"

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120, **kw
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:3])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}"
            )
        return proc

    def image_exists(self, name: str) -> bool:
        return self("image", "exists", name, check=False).returncode == 0

    def run(self, image: str, *command: str, name: str | None = None, options: tuple[str, ...] = ()) -> str:
        """`podman run -d` with the session label; the container's id."""
        args = ["run", "-d", "--label", self.label]
        if name:
            args += ["--name", name]
        return self(*args, *options, image, *command).stdout.strip()

    def inspect(self, name: str) -> dict:
        return json.loads(self("inspect", "--type", "container", name).stdout)[0]

    def logs(self, name: str) -> str:
        proc = self("logs", name, check=False)
        return proc.stdout + proc.stderr

    def volume(self, name: str) -> str:
        self("volume", "create", "--label", self.label, name)
        return name

    def clean(self) -> None:
        """Remove every container and volume of this session (and their anonymous volumes)."""
        for _attempt in range(3):  # a container caught mid-stop can refuse once: look again
            ids = self("ps", "-aq", "--filter", f"label={self.label}", check=False).stdout.split()
            if not ids:
                break
            self("rm", "-f", "-v", "-t", "2", *ids, check=False, timeout=120)
        vols = self("volume", "ls", "-q", "--filter", f"label={self.label}", check=False).stdout.split()
        if vols:
            self("volume", "rm", "-f", *vols, check=False)


@contextlib.contextmanager
def _locked(name: str):
    """A machine-wide lock (two test runs must not build the same base at once)."""
    with open(Path(tempfile.gettempdir()) / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_base_image(podman: Podman, name: str = BASE_IMAGE, mirror: str = DEBIAN_MIRROR) -> bool:
    """`debian:bookworm-slim` made the way the official one is: debootstrap --variant=minbase, slimmed.

    Returns False when the image already exists (nothing built)."""
    with _locked("truebit-debian-base.lock"):
        if podman.image_exists(name):
            return False
        debootstrap = require_tool("debootstrap")
        with tempfile.TemporaryDirectory(prefix="tb-rootfs-", dir="/var/tmp") as tmp:
            rootfs = Path(tmp) / "rootfs"
            proc = subprocess.run(
                [debootstrap, "--variant=minbase", "bookworm", str(rootfs), mirror],
                capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if proc.returncode != 0:
                raise AssertionError(f"debootstrap failed: {(proc.stdout + proc.stderr)[-2000:]}")
            (rootfs / "etc/dpkg/dpkg.cfg.d/slim").write_text(DPKG_SLIM)
            (rootfs / "etc/apt/sources.list").write_text(APT_SOURCES.format(mirror=mirror))
            (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
                'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
                'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
            )
            for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*",
                            "usr/share/man/*", "usr/share/info/*", "var/log/*.log", "var/cache/debconf/*-old"):  # fmt: skip
                for path in rootfs.glob(pattern):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
            for path in (rootfs / "usr/share/locale").iterdir():
                if path.name != "locale.alias":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            tar = subprocess.Popen(
                ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
            )
            podman("import", "--change", 'CMD ["bash"]', "-", name, stdin=tar.stdout, timeout=300)
            tar.wait(60)
        return True


def build_agent_image(podman: Podman, tag: str = AGENT_IMAGE, base: str = BASE_IMAGE) -> float:
    """`podman build --format docker` of the project's Dockerfile on `base`; seconds it took."""
    args = ["build", "--format", "docker", "--build-arg", f"BASE={base}", "-t", tag]
    if HOST_CA.exists():
        # Package registries may be reached through a TLS proxy the host trusts (CONTAINERS.md).
        args += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--env", "PIP_CERT=/run/host-ca.crt"]
    started = time.monotonic()
    podman(*args, str(ROOT), timeout=900)
    return time.monotonic() - started


@pytest.fixture(scope="session")
def podman() -> Podman:
    require_tool("runc")
    p = Podman(require_tool("podman"), f"s{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        yield p
    finally:
        p.clean()


@pytest.fixture(scope="session")
def base_image(podman) -> str:
    build_base_image(podman)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def agent_image(podman, base_image) -> str:
    build_agent_image(podman, AGENT_IMAGE, base_image)
    return AGENT_IMAGE


@dataclass
class EngineApi:
    """`podman system service` serving the Docker Engine API on `path` (a unix socket)."""

    podman: Podman
    path: Path
    proc: subprocess.Popen | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> EngineApi:
        self.proc = subprocess.Popen(
            [self.podman.binary, "system", "service", "--time=0", self.docker_host],
            env=self.podman.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # .ci/run's trap stops it by this pid if the test run itself is killed.
        (self.path.parent / "service.pid").write_text(str(self.proc.pid))
        wait_for(self.answers, timeout=20, interval=0.05, what=f"the Engine API on {self.path}")
        return self

    def answers(self) -> bool:
        import socket

        if not self.path.exists():
            return False
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            try:
                s.connect(str(self.path))
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@pytest.fixture
def engine_api(podman):
    # AF_UNIX paths are limited to ~107 bytes: a short directory of its own.
    folder = Path(tempfile.mkdtemp(prefix="tb-eng-"))
    api = EngineApi(podman, folder / "docker.sock")
    try:
        yield api.start()
    finally:
        api.stop()
        shutil.rmtree(folder, ignore_errors=True)


# A runner node stand-in made of a real container: it prints, in order, each file the test drops
# into its spool (`*.out` to stdout, `*.err` to stderr) and deletes it, so a restarted or
# re-created container never prints anything twice.
NODE_SCRIPT = r"""
set -u
while :; do
  for f in $(ls /spool 2>/dev/null | sort); do
    case "$f" in
      *.out) cat "/spool/$f"; rm -f "/spool/$f" ;;
      *.err) cat "/spool/$f" >&2; rm -f "/spool/$f" ;;
    esac
  done
  sleep 0.05
done
"""


def spool_print(spool: Path, text: str, *, stream: int = 1) -> Path:
    """Hand `text` to a node container running NODE_SCRIPT on `spool`; the file it will print."""
    stamp = f"{time.time_ns():020d}"
    path = spool / f"{stamp}.{'out' if stream == 1 else 'err'}"
    tmp = spool / f".{stamp}.tmp"
    tmp.write_text(text)
    tmp.rename(path)
    return path


@dataclass
class NodeContainer:
    podman: Podman
    image: str
    name: str
    spool: Path
    tty: bool = False
    options: list[str] = field(default_factory=list)

    def start(self) -> NodeContainer:
        opts = ["-v", f"{self.spool}:/spool", "--stop-signal", "KILL", *(["-t"] if self.tty else [])]
        self.podman.run(self.image, "sh", "-c", NODE_SCRIPT, name=self.name, options=tuple(opts))
        return self

    def write(self, text: str, *, stream: int = 1) -> None:
        """The node prints `text` (stream 1 = stdout, 2 = stderr); returns once it has printed it."""
        path = spool_print(self.spool, text, stream=stream)
        wait_for(lambda: not path.exists(), timeout=20, interval=0.02, what=f"{self.name} to print")

    def restart(self) -> None:
        self.podman("restart", "-t", "0", self.name)

    def recreate(self) -> None:
        self.podman("rm", "-f", "-t", "0", self.name)
        self.start()

    @property
    def id(self) -> str:
        return self.podman.inspect(self.name)["Id"]


@pytest.fixture
def node_container(podman, base_image, tmp_path_factory):
    made: list[NodeContainer] = []

    def make(name: str | None = None, *, tty: bool = False, start: bool = True) -> NodeContainer:
        spool = tmp_path_factory.mktemp("spool")
        node = NodeContainer(podman, base_image, name or f"tb-node-{uuid.uuid4().hex[:8]}", spool, tty)
        made.append(node)
        return node.start() if start else node

    yield make
    for node in made:
        podman("rm", "-f", "-t", "0", node.name, check=False)
