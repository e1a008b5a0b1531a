"""Hardening audit behind `seedctl check`: findings with severity and fix, from the spec and rendered text.

Pure apart from reading the TLS certificate and the secrets dir's file modes.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .spec import Spec, is_loopback
from .users import effective_users, permissions, stray_names

SEVERITIES = ("critical", "high", "medium", "low")
# Federation messages are <= 1 KB (PROTOCOL.md §2); 8 KB leaves room for headers, 64 KB is already lax.
MAX_PAYLOAD_LIMIT = 64 * 1024
_PASSWORD_RE = re.compile(r"password\s*[:=]\s*\"?([^\"\s,}]+)")


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    where: str
    problem: str
    fix: str

    def line(self) -> str:
        return f"[{self.severity.upper()}] {self.where}: {self.problem}. Fix: {self.fix}"


def _self_signed(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - any verification failure: not self-signed
        return False


def audit(spec: Spec, rendered: dict[str, str] | None = None) -> list[Finding]:
    """Every hardening problem of the spec (and of the rendered configs, if given)."""
    out: list[Finding] = []
    for s in spec.servers:
        public = not is_loopback(s.host)
        if public and spec.tls is None:
            out.append(
                Finding(
                    "high",
                    f"servers.{s.name}.host",
                    f"clients connect to {s.host}:{s.client_port} without TLS: passwords cross the network in clear",
                    "add tls.cert and tls.key to the spec",
                )
            )
        route_public = s.cluster_port is not None and not is_loopback(s.host)
        if route_public and spec.route_tls is None:
            out.append(
                Finding(
                    "high",
                    f"servers.{s.name}.cluster_port",
                    f"cluster routes listen on {s.host}:{s.cluster_port} without TLS: every federation "
                    "message and the route password cross the network in clear",
                    "add cluster.tls (cert, key, ca) to the spec, or bind routes to a private network",
                )
            )
        if not is_loopback(s.monitor_host):
            out.append(
                Finding(
                    "high",
                    f"servers.{s.name}.monitor_host",
                    f"monitoring endpoints exposed on {s.monitor_host}:{s.monitor_port} (no authentication)",
                    "set monitor_host: 127.0.0.1 and reach it through the console or an SSH tunnel",
                )
            )
    if spec.clustered and spec.route_auth is None:
        out.append(
            Finding(
                "critical",
                "cluster.auth",
                "routes accept any server: one that reaches a cluster port joins the mesh, reads every "
                "federation message, injects messages and lists the seeds' clients through $SYS",
                "remove `auth: none` from cluster (a generated route password is the default)",
            )
        )
    if spec.tls and any(not is_loopback(s.host) for s in spec.servers) and _self_signed(spec.tls.cert):
        out.append(
            Finding(
                "medium",
                "tls.cert",
                f"{spec.tls.cert} is self-signed on a public listen address: monitors cannot verify the seed",
                "use a certificate from a CA (a private CA is fine: give monitors FEDERATION_TLS_CA)",
            )
        )
    for u in effective_users(spec):
        if not permissions(u, spec.subject_prefix):
            out.append(
                Finding(
                    "high",
                    f"users.{u.name}",
                    "user without permissions: may publish and subscribe anything in its account",
                    "give it publish/subscribe lists, or a role (monitor, observer, enrolled)",
                )
            )
        if u.password is not None:
            out.append(
                Finding(
                    "high",
                    f"users.{u.name}.password",
                    "plaintext password in the spec file",
                    f"remove it and run `seedctl users add {u.name}` (generated, kept 0600 in the secrets dir)",
                )
            )
    if spec.limits.max_payload > MAX_PAYLOAD_LIMIT:
        out.append(
            Finding(
                "medium",
                "limits.max_payload",
                f"{spec.limits.max_payload} bytes, far above the 1 KB federation messages need",
                "use the default 8192",
            )
        )
    if not spec.system_account:
        out.append(
            Finding(
                "medium",
                "system_account",
                "no system account: server events and $SYS requests are not isolated",
                "set system_account: true and keep one admin user",
            )
        )
    elif not spec.auth.operator and not any(u.role == "admin" for u in spec.users):
        # (operator mode: seedctl's own system-account user, secrets_dir/operator/seedctl.creds)
        out.append(
            Finding(
                "low",
                "users",
                "no admin user in the system account: `nats server` introspection is unavailable",
                "add {name: admin, role: admin}",
            )
        )
    out.extend(_secret_modes(spec))
    out.extend(_stray_secrets(spec))
    for name, text in (rendered or {}).items():
        out.extend(_rendered_passwords(name, text))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(out, key=lambda f: order[f.severity])


def _stray_secrets(spec: Spec) -> list[Finding]:
    users = {u.name for u in effective_users(spec)}
    return [
        Finding(
            "medium",
            str(spec.secrets_dir / name),
            f"a secret of {name!r}, which is no user any more: adding {name!r} again would bring it back",
            f"seedctl users remove {name}",
        )
        for name in stray_names(spec.secrets_dir, users)
    ]


def _secret_modes(spec: Spec) -> list[Finding]:
    out: list[Finding] = []
    d = spec.secrets_dir
    if not d.is_dir():
        return out
    for p in sorted(d.iterdir()):
        if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077:
            out.append(
                Finding(
                    "high",
                    str(p),
                    f"secret file readable by others (mode {stat.S_IMODE(p.stat().st_mode):o})",
                    f"chmod 600 {p}",
                )
            )
    return out


def _rendered_passwords(name: str, text: str) -> list[Finding]:
    out = []
    in_cluster = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        # The route password is necessarily in clear (nats-server dials routes with it): not a finding.
        if line.startswith("cluster {"):
            in_cluster = True
        elif in_cluster and line.startswith("}"):
            in_cluster = False
        if in_cluster:
            continue
        for m in _PASSWORD_RE.finditer(line):
            value = m.group(1)
            if not value.startswith("$2"):
                out.append(
                    Finding(
                        "high",
                        f"{name}:nats-server.conf:{lineno}",
                        "plaintext password in the server config",
                        "render with seedctl (bcrypt hashes only)",
                    )
                )
            elif int(value.split("$")[2] or 0) < 11:
                out.append(
                    Finding(
                        "high",
                        f"{name}:nats-server.conf:{lineno}",
                        "bcrypt cost below 11",
                        "delete the user's .bcrypt file in the secrets dir and render again",
                    )
                )
    return out
