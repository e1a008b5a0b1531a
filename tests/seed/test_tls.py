"""TLS seeds: a tls {} block is rendered, TLS clients that trust the CA connect, others are refused."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import nats
import pytest
import trustme


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_files(tmp_path, ca):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    cert.private_key_pem.write_to_path(str(key))
    cert.cert_chain_pems[0].write_to_path(str(chain))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(chain), append=True)
    return {"cert": chain, "key": key}


def _client_ctx(ca_obj) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca_obj.configure_trust(ctx)
    return ctx


async def _connect(url, ctx):
    return await nats.connect(
        url, tls=ctx, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3
    )


def test_tls_client_trusting_the_ca_connects_others_are_refused(seed_factory, tls_files, ca):
    handle = seed_factory(tls={**tls_files, "ca": None})
    conf = (handle.state_dir / "seed-1" / "nats-server.conf").read_text()
    assert "tls {" in conf and str(tls_files["cert"]) in conf and "verify" not in conf

    async def go():
        nc = await _connect(handle.url_for("monitor"), _client_ctx(ca))
        got = []

        async def cb(msg):
            got.append(msg.data)

        await nc.subscribe("tbfed.v1.>", cb=cb)
        await nc.publish("tbfed.v1.task.node-aaaaaaaaaa", b"over tls")
        await nc.flush()
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [b"over tls"]
        assert nc.connected_url is not None
        await nc.close()

        with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
            await _connect(handle.url_for("monitor"), _client_ctx(trustme.CA()))

    asyncio.run(go())


def test_plain_text_client_is_refused(seed_factory, tls_files):
    handle = seed_factory(tls={**tls_files, "ca": None})
    user, password = handle.credentials("monitor")
    port = handle.spec.servers[0].client_port
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        f = s.makefile("rwb")
        info = json.loads(f.readline().split(b" ", 1)[1])
        assert info["tls_required"] is True
        f.write(f'CONNECT {{"user":"{user}","pass":"{password}","verbose":false}}\r\nPING\r\n'.encode())
        f.flush()
        reply = f.readline()
    assert b"-ERR" in reply or reply == b"", reply
    assert b"PONG" not in reply


def test_mutual_tls_needs_a_client_certificate(seed_factory, tmp_path, tls_files, ca):
    client_ca = trustme.CA()
    client_ca_path = tmp_path / "clients-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_path))
    handle = seed_factory(tls={**tls_files, "ca": client_ca_path})
    conf = (handle.state_dir / "seed-1" / "nats-server.conf").read_text()
    assert "verify: true" in conf

    async def go():
        with pytest.raises(Exception):  # noqa: B017, PT011 - the server drops the handshake
            await _connect(handle.url_for("monitor"), _client_ctx(ca))
        ctx = _client_ctx(ca)
        client_ca.issue_cert("node-aaaaaaaaaa").configure_cert(ctx)
        nc = await _connect(handle.url_for("monitor"), ctx)
        assert nc.is_connected
        await nc.close()

    asyncio.run(go())
