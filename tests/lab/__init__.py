"""A fleet lab of throwaway systemd machines on one Linux host (see docs/lab.md).

Each lab host boots this machine's own OS with systemd as PID 1 under `systemd-nspawn`, on an
overlay (lower layer `/`, upper layer a tmpfs) mounted in a private mount namespace, so nothing
it writes survives it. Hosts get their own address on a private bridge (`tblab<id>`, host-side
veths `vb-<machine>`), root SSH by a key generated per lab, the project checkout read-only at
its own path, and tmpfs over the host paths a guest must not see (/work, /root, /home, /mnt...).

Not a security boundary (guest root is host root): throwaway data only. Needs root,
systemd-container, openssh-server, iproute2 and nftables (faults).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_ROOT = Path(os.environ.get("TBLAB_STATE", "/run/tblab"))
PROJECT = Path(__file__).resolve().parents[2]
BRIDGE_PREFIX = "tblab"
VETH_PREFIX = "vb-"
# Host paths the guests must not see (the overlay's lower layer is the real `/`).
PRIVATE_PATHS = ("/work", "/root", "/home", "/mnt", "/srv", "/var/tmp", "/opt", "/media")
# Units of this machine that make no sense (or harm) inside a guest.
MASKED_UNITS = (
    "getty@tty1.service", "console-getty.service", "serial-getty@.service", "systemd-timesyncd.service",
    "postgresql.service", "prometheus.service", "prometheus-node-exporter.service", "e2scrub_reap.service",
    "e2scrub_all.timer", "fstrim.timer", "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer",
    "logrotate.timer", "ipmievd.service", "openipmi.service", "cron.service", "exim4.service",
    "podman.service", "podman-auto-update.timer", "podman-restart.service", "machines.target",
    "systemd-networkd-wait-online.service", "remote-fs.target", "dpkg-db-backup.timer",
)
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
    "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
)
REQUIRED_TOOLS = ("systemd-nspawn", "unshare", "ip", "ssh", "ssh-keygen", "systemd-id128")


class LabError(RuntimeError):
    """The lab cannot start or act; the message is one line saying why."""


@dataclass
class Host:
    name: str  # inventory name, e.g. lab1
    machine: str  # nspawn machine name (unique across labs), e.g. tb3f2ah1
    address: str
    pid: int = 0

    @property
    def veth(self) -> str:
        return VETH_PREFIX + self.machine


@dataclass
class Lab:
    lab_id: str
    subnet: str
    bridge: str
    hosts: list[Host] = field(default_factory=list)
    mirror_pid: int = 0

    # --- paths -------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.lab_id

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def gateway(self) -> str:
        """The bridge's own address (this machine, as seen from the guests)."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def nft_table(self) -> str:
        return f"tblab_{self.lab_id}"

    def host(self, name_or_index: str | int) -> Host:
        if isinstance(name_or_index, int):
            return self.hosts[name_or_index - 1]
        return next(h for h in self.hosts if name_or_index in (h.name, h.machine))

    def save(self) -> None:
        (self.state_dir / "lab.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, state_dir: Path) -> Lab:
        data = json.loads((state_dir / "lab.json").read_text())
        data["hosts"] = [Host(**h) for h in data["hosts"]]
        return cls(**data)

    # --- access ------------------------------------------------------------------------
    def ssh_argv(self, host: Host | str | int, command: str) -> list[str]:
        h = host if isinstance(host, Host) else self.host(host)
        return ["ssh", "-i", str(self.key), *SSH_OPTIONS, f"root@{h.address}", command]

    def ssh(self, host, command: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run(self.ssh_argv(host, command), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"ssh {host}: {command!r} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}")
        return r

    def inventory(self, groups: dict[str, list[str]] | None = None) -> dict:
        """An Ansible inventory for the lab hosts (root over SSH with the lab key)."""
        hosts = {h.name: {"ansible_host": h.address} for h in self.hosts}
        inv: dict = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(self.key),
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "hosts": hosts,
            }
        }
        if groups:
            inv["all"]["children"] = {g: {"hosts": {n: {} for n in names}} for g, names in groups.items()}
        return inv

    # --- faults (nftables bridge family and link state) ---------------------------------
    def _nft(self, script: str) -> None:
        r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"nft failed: {r.stderr.strip()}")

    def _ensure_table(self) -> None:
        t = self.nft_table
        self._nft(
            f"table bridge {t} {{\n"
            "  chain forward { type filter hook forward priority 0; policy accept; }\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n"
        )

    def cut(self, host) -> None:
        """Cut one host off the bridge (its link goes down: nobody reaches it, it reaches nobody)."""
        h = host if isinstance(host, Host) else self.host(host)
        _run(["ip", "link", "set", h.veth, "down"])

    def partition(self, side_a: list, side_b: list) -> None:
        """Drop every frame between the two sides; each side still reaches this machine."""
        self._ensure_table()
        rules = []
        for a in side_a:
            for b in side_b:
                va, vb = (x if isinstance(x, Host) else self.host(x) for x in (a, b))
                rules.append(f'add rule bridge {self.nft_table} forward iifname "{va.veth}" oifname "{vb.veth}" drop')
                rules.append(f'add rule bridge {self.nft_table} forward iifname "{vb.veth}" oifname "{va.veth}" drop')
        self._nft("\n".join(rules) + "\n")

    def drop(self, host, percent: int) -> None:
        """Drop `percent` % of the frames to and from one host, at random."""
        h = host if isinstance(host, Host) else self.host(host)
        if not 0 < percent <= 100:
            raise LabError(f"drop percent must be in 1..100, not {percent}")
        self._ensure_table()
        t = self.nft_table
        share = "" if percent == 100 else f"numgen random mod 100 < {percent} "
        where = (("forward", "iifname"), ("forward", "oifname"), ("input", "iifname"), ("output", "oifname"))
        self._nft("".join(f'add rule bridge {t} {chain} {match} "{h.veth}" {share}drop\n' for chain, match in where))

    def heal(self) -> None:
        """Undo every fault: links up, the lab's nftables table removed."""
        for h in self.hosts:
            subprocess.run(["ip", "link", "set", h.veth, "up"], capture_output=True)
        subprocess.run(["nft", "delete", "table", "bridge", self.nft_table], capture_output=True)

    # --- lifecycle -----------------------------------------------------------------------
    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.hosts)
        last = ""
        while pending:
            for h in list(pending):
                if not _alive(h.pid):
                    log = (self.state_dir / h.machine / "console.log")
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                    raise LabError(f"lab host {h.name} exited while booting: {' | '.join(tail) or 'no output'}")
                r = subprocess.run(
                    self.ssh_argv(h, "systemctl is-system-running --wait >/dev/null 2>&1; echo ok"),
                    capture_output=True, text=True, timeout=60,
                )
                if r.returncode == 0 and "ok" in r.stdout:
                    pending.remove(h)
                else:
                    last = (r.stderr or r.stdout).strip()
            if pending and time.monotonic() > deadline:
                raise LabError(f"lab host {pending[0].name} did not answer ssh within {timeout:.0f} s: {last}")
            if pending:
                time.sleep(0.5)

    def down(self) -> None:
        """Stop every host, remove the bridge, cgroups, mounts and state (safe to call twice)."""
        stop_pids([h.pid for h in self.hosts] + [self.mirror_pid])
        for h in self.hosts:
            remove_cgroups(h.machine)
            subprocess.run(["ip", "link", "delete", h.veth], capture_output=True)
            for leftover in (Path("/run/systemd/nspawn/propagate") / h.machine, Path("/run/systemd/nspawn/unix-export") / h.machine):
                with contextlib.suppress(OSError):
                    if leftover.is_dir():
                        shutil.rmtree(leftover)
                    else:
                        leftover.unlink()
        subprocess.run(["nft", "delete", "table", "bridge", self.nft_table], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        _remove_empty_nspawn_dirs()


# --- starting a lab ---------------------------------------------------------------------------

def check_prerequisites() -> None:
    """One line saying why this machine cannot run the lab, or nothing."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (systemd-nspawn, bridges, overlay mounts)")
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
    if not Path("/usr/sbin/sshd").exists():
        missing.append("sshd (openssh-server)")
    if not Path("/lib/systemd/systemd-networkd").exists():
        missing.append("systemd-networkd (systemd)")
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)} (apt-get install systemd-container openssh-server iproute2 nftables)")


def up(n: int, *, timeout: float = 90) -> Lab:
    """Boot `n` lab hosts on a fresh private bridge and wait until each answers ssh as root."""
    check_prerequisites()
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE_ROOT, 0o700)
    lab_id = secrets.token_hex(2)
    with _locked():
        subnet = _free_subnet()
        lab = Lab(lab_id=lab_id, subnet=subnet, bridge=f"{BRIDGE_PREFIX}{lab_id}")
        lab.state_dir.mkdir(mode=0o700)
        net = ipaddress.ip_network(subnet)
        addrs = list(net.hosts())
        lab.hosts = [Host(name=f"lab{i}", machine=f"tb{lab_id}h{i}", address=str(addrs[9 + i])) for i in range(1, n + 1)]
        lab.save()
        try:
            _run(["ip", "link", "add", lab.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{lab.gateway}/{net.prefixlen}", "dev", lab.bridge])
            _run(["ip", "link", "set", lab.bridge, "up"])
        except LabError:
            lab.down()
            raise
    try:
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"tblab-{lab_id}", "-f", str(lab.key)])
        for h in lab.hosts:
            h.pid = _boot(lab, h)
        lab.save()
        lab.wait_ready(timeout)
    except BaseException:
        lab.down()
        raise
    return lab


def _boot(lab: Lab, h: Host) -> int:
    d = lab.state_dir / h.machine
    (d / "rw").mkdir(parents=True)
    (d / "root").mkdir()
    prefix = ipaddress.ip_network(lab.subnet).prefixlen
    network = f"[Match]\nName=host0\n\n[Network]\nAddress={h.address}/{prefix}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    masks = " ".join(f"--tmpfs={p}:mode=0755" for p in PRIVATE_PATHS if Path(p).exists())
    binds = f"--bind-ro={PROJECT}:{PROJECT}"
    if Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")).is_dir() and not str(os.environ["VIRTUAL_ENV"]).startswith(str(PROJECT)):
        binds += f" --bind-ro={os.environ['VIRTUAL_ENV']}:{os.environ['VIRTUAL_ENV']}"
    cgroups = " ".join(str(p) for p in cgroup_dirs(h.machine))
    script = f"""set -eu
for cg in {cgroups}; do
  mkdir -p "$cg"
  parent=$(dirname "$cg")
  if [ -f "$cg/cpuset.cpus" ] && [ -z "$(cat "$cg/cpuset.cpus")" ]; then
    cat "$parent/cpuset.cpus" > "$cg/cpuset.cpus"; cat "$parent/cpuset.mems" > "$cg/cpuset.mems"
  fi
  echo $$ > "$cg/cgroup.procs"
done
D={d}
mount -t tmpfs -o mode=0755,size=1g tblab "$D/rw"
mkdir "$D/rw/upper" "$D/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/rw/upper,workdir=$D/rw/work" "$D/root"
R="$D/root"
echo {h.name} > "$R/etc/hostname"
printf '127.0.0.1 localhost\\n127.0.1.1 {h.name}\\n' > "$R/etc/hosts"
systemd-id128 new > "$R/etc/machine-id"
: > "$R/etc/fstab"
rm -f "$R"/etc/ssh/ssh_host_* "$R/usr/sbin/policy-rc.d"
ssh-keygen -q -A -f "$R"
mkdir -p "$R/etc/systemd/network"
printf '%s' '{network}' > "$R/etc/systemd/network/10-host0.network"
for w in multi-user getty timers default; do rm -rf "$R/etc/systemd/system/$w.target.wants"; done
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/"
ln -sf /lib/systemd/system/ssh.service "$R/etc/systemd/system/multi-user.target.wants/"
ln -sf /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"
for u in {' '.join(MASKED_UNITS)}; do ln -sf /dev/null "$R/etc/systemd/system/$u"; done
exec systemd-nspawn -q -D "$R" -b --register=no --keep-unit --machine={h.machine} \\
  --network-bridge={lab.bridge} --console=read-only {masks} \\
  --bind-ro={lab.key}.pub:/root/.ssh/authorized_keys {binds}
"""
    (d / "boot.sh").write_text(script)
    log = open(d / "console.log", "wb")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "bash", str(d / "boot.sh")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    return proc.pid


# --- cleaning up ------------------------------------------------------------------------------

def cgroup_dirs(machine: str) -> list[Path]:
    """This host's own cgroup directory in every mounted hierarchy, under this process's cgroup."""
    dirs = []
    base = Path("/sys/fs/cgroup")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            mount = base / "unified" if (base / "unified").is_dir() else base
        else:
            mount = base / controllers.removeprefix("name=")
        if not (mount / "cgroup.procs").exists():
            continue
        dirs.append(mount / path.lstrip("/") / f"tblab-{machine}")
    return dirs


def remove_cgroups(machine: str) -> None:
    for d in cgroup_dirs(machine):
        if d.is_dir():
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()


def stop_pids(pids: list[int], timeout: float = 15) -> None:
    live = [p for p in pids if p and _alive(p)]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in live) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in live:
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    for p in live:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p, os.WNOHANG)


def down_all() -> list[str]:
    """Clean every lab this machine has, including what a killed run left; names what it removed."""
    removed = []
    if STATE_ROOT.is_dir():
        for d in sorted(STATE_ROOT.iterdir()):
            if (d / "lab.json").exists():
                lab = Lab.load(d)
                lab.down()
                removed.append(f"lab {lab.lab_id} ({len(lab.hosts)} hosts, bridge {lab.bridge})")
            else:
                shutil.rmtree(d, ignore_errors=True)
    # Links, tables and cgroups with the lab's prefixes that no state names any more.
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith((BRIDGE_PREFIX, VETH_PREFIX + "tb")):
            subprocess.run(["ip", "link", "delete", name], capture_output=True)
            removed.append(f"link {name}")
    tables = subprocess.run(["nft", "list", "tables", "bridge"], capture_output=True, text=True).stdout
    for line in tables.splitlines():
        name = line.split()[-1]
        if name.startswith("tblab_"):
            subprocess.run(["nft", "delete", "table", "bridge", name], capture_output=True)
            removed.append(f"nft table {name}")
    for d in cgroup_dirs("x"):
        for leftover in d.parent.glob("tblab-*"):
            pids = [int(p) for p in (leftover / "cgroup.procs").read_text().split()] if (leftover / "cgroup.procs").exists() else []
            stop_pids(pids, timeout=5)
            remove_cgroups(leftover.name.removeprefix("tblab-"))
            removed.append(f"cgroup {leftover}")
    for sub in ("propagate", "unix-export"):
        for leftover in Path("/run/systemd/nspawn", sub).glob("tb*"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    _remove_empty_nspawn_dirs()
    return removed


def _remove_empty_nspawn_dirs() -> None:
    nspawn = Path("/run/systemd/nspawn")
    for p in (nspawn / "propagate", nspawn / "unix-export", nspawn / "locks", nspawn):
        with contextlib.suppress(OSError):
            p.rmdir()


# --- helpers ----------------------------------------------------------------------------------

def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def _alive(pid: int) -> bool:
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _free_subnet() -> str:
    """A /24 in 10.213.0.0/16 that no interface or route of this machine uses."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    for k in range(10, 250):
        net = f"10.213.{k}."
        if net not in used:
            return f"10.213.{k}.0/24"
    raise LabError("no free 10.213.x.0/24 range left for a lab bridge")


@contextlib.contextmanager
def _locked():
    import fcntl

    with open(STATE_ROOT / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
