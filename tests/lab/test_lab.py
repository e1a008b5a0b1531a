"""The lab itself: real systemd hosts reachable by root SSH on a private bridge, private host
paths hidden, the checkout read-only, and network faults that really cut traffic."""

from __future__ import annotations

import socket

from tests.plugins.tools import wait_for

PROBE = "python3 -c \"import socket,sys; socket.create_connection(('{addr}', 22), {t}).close()\""


def reaches(lab, src, dst, timeout: float = 2) -> bool:
    """Can host `src` open a TCP connection to host `dst`'s sshd?"""
    r = lab.ssh(src, PROBE.format(addr=lab.host(dst).address, t=timeout), check=False, timeout=30)
    return r.returncode == 0


def host_reaches(lab, dst, timeout: float = 2) -> bool:
    try:
        socket.create_connection((lab.host(dst).address, 22), timeout).close()
        return True
    except OSError:
        return False


def test_hosts_boot_systemd_and_answer_root_ssh(lab):
    assert len(lab.hosts) >= 5
    for h in lab.hosts:
        out = lab.ssh(h, "hostname; cat /proc/1/comm; id -u; systemctl is-system-running").stdout.split()
        assert out[:3] == [h.name, "systemd", "0"], out
        assert out[3] in ("running", "degraded")
    ids = {lab.ssh(h, "cat /etc/machine-id").stdout for h in lab.hosts}
    assert len(ids) == len(lab.hosts), "each host has its own machine id"
    keys = {lab.ssh(h, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for h in lab.hosts}
    assert len(keys) == len(lab.hosts), "each host has its own ssh host key"


def test_private_paths_are_hidden_and_the_checkout_is_read_only(lab):
    from tests.lab import PROJECT

    h = lab.host(1)
    # The lab's own key (under /run/tblab on this machine) and private dirs are not visible.
    assert lab.ssh(h, f"test -e {lab.key} && echo visible || echo hidden").stdout.strip() == "hidden"
    for private in ("/root", "/home", "/mnt"):
        listing = lab.ssh(h, f"ls -A {private} 2>/dev/null | grep -v '^.ssh$' || true").stdout.split()
        assert listing == [], f"{private} leaks into the guest: {listing}"
    assert lab.ssh(h, f"test -f {PROJECT}/pyproject.toml && echo yes").stdout.strip() == "yes"
    r = lab.ssh(h, f"touch {PROJECT}/written-by-guest", check=False)
    assert r.returncode != 0 and "Read-only" in r.stderr
    # What a guest writes stays in its overlay.
    lab.ssh(h, "echo guest > /etc/tblab-probe")
    assert lab.ssh(lab.host(2), "test -e /etc/tblab-probe && echo seen || echo absent").stdout.strip() == "absent"


def test_cut_partition_drop_and_heal(healed):
    lab = healed
    assert reaches(lab, 1, 2) and reaches(lab, 2, 3) and host_reaches(lab, 1)

    lab.cut(2)
    assert not reaches(lab, 1, 2, 1) and not host_reaches(lab, 2, 1)
    assert reaches(lab, 1, 3)
    lab.heal()
    wait_for(lambda: reaches(lab, 1, 2), timeout=10, what="host 2 back after heal")

    lab.partition([1], [2, 3])
    assert not reaches(lab, 1, 2, 1) and not reaches(lab, 3, 1, 1)
    assert reaches(lab, 2, 3) and host_reaches(lab, 1) and host_reaches(lab, 2)
    lab.heal()
    assert reaches(lab, 1, 2)

    lab.drop(3, 100)
    assert not reaches(lab, 1, 3, 1) and not host_reaches(lab, 3, 1)
    lab.heal()
    assert reaches(lab, 1, 3) and host_reaches(lab, 3)
