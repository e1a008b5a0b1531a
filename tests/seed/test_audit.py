"""The hardening audit flags self-signed certificates on public addresses, not CA-issued ones."""

from __future__ import annotations

import datetime as dt

import trustme
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from seed.audit import audit
from seed.spec import load_spec


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seed.example.org")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "self.pem", tmp_path / "self-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _spec(tmp_path, cert, key, host="0.0.0.0"):
    data = {
        "servers": [{"name": "seed-1", "host": host, "client_port": 4222, "monitor_port": 8222}],
        "tls": {"cert": str(cert), "key": str(key)},
    }
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def test_self_signed_certificate_on_public_address_is_flagged(tmp_path):
    cert, key = _self_signed(tmp_path)
    findings = audit(_spec(tmp_path, cert, key))
    assert [(f.severity, f.where) for f in findings] == [("medium", "tls.cert")]
    assert "self-signed" in findings[0].problem and "FEDERATION_TLS_CA" in findings[0].fix
    # the same certificate on loopback only is a local test setup, not a finding
    assert audit(_spec(tmp_path, cert, key, host="127.0.0.1")) == []


def test_ca_issued_certificate_on_public_address_is_clean(tmp_path):
    issued = trustme.CA().issue_cert("seed.example.org")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    assert audit(_spec(tmp_path, cert, key)) == []


def _cluster_spec(tmp_path, host: str, **cluster) -> object:
    servers = [
        {"name": f"seed-{i}", "host": host.format(i=i), "client_port": 4222 + i, "cluster_port": 6222 + i}
        | {"monitor_port": 8222 + i}
        for i in (1, 2)
    ]
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"servers": servers, "cluster": {"name": "c", **cluster}}))
    return load_spec(path)


def test_cluster_without_route_auth_is_critical_and_open_routes_without_tls_high(tmp_path):
    loopback = audit(_cluster_spec(tmp_path, "127.0.0.1", auth="none"))
    assert [(f.severity, f.where) for f in loopback] == [("critical", "cluster.auth")]
    # Routes on another host's address without TLS: every message and the route password in clear.
    public = audit(_cluster_spec(tmp_path, "10.9.0.{i}"))
    routes = [(f.severity, f.where) for f in public if f.where.endswith("cluster_port")]
    assert routes == [("high", "servers.seed-1.cluster_port"), ("high", "servers.seed-2.cluster_port")]
    assert not any(f.severity == "critical" for f in public)


def test_route_tls_and_default_route_auth_leave_no_cluster_finding(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("10.9.0.1")
    cert, key, ca_file = tmp_path / "r.pem", tmp_path / "r-key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    spec = _cluster_spec(tmp_path, "10.9.0.{i}", tls={"cert": str(cert), "key": str(key), "ca": str(ca_file)})
    assert spec.route_tls is not None and spec.route_auth is not None
    assert [f.where for f in audit(spec) if "cluster" in f.where] == []
