"""NKEY authentication and mutual TLS against a real seed: agents, raw nats-py clients, start-up checks."""

from __future__ import annotations

import asyncio
import contextlib

import nats
import pytest
import trustme

from monitor_agent.config import load_config
from monitor_agent.errors import ConfigError
from seed import secrets, users
from tests.plugins.seed import SeedHandle, make_seed
from tests.plugins.tools import free_port

from .conftest import agent_env, task_event, wait_for

NODE_A, NODE_B = "node-aaaaaaaaaa", "node-bbbbbbbbbb"
EXEC_ID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


NKEY_USERS = [
    {"name": "admin", "role": "admin"},
    {"name": "monitor", "role": "monitor", "auth": "nkey"},
    {"name": NODE_A, "role": "enrolled", "auth": "nkey"},
    {"name": NODE_B, "role": "enrolled", "auth": "nkey"},
]


def _start_seed(root, binary, secret_cache, **kw) -> SeedHandle:
    """A real seed whose monitor and enrolled users authenticate with nkeys (seedctl's own code)."""
    return make_seed(root, binary, secret_cache, free_port, users=NKEY_USERS, **kw)


def _seed_file(seed: SeedHandle, user: str, out) -> str:
    """The credentials file `seedctl users credentials` writes for an nkey user."""
    text = users.credentials_text(seed.spec, seed.spec.user(user), create=False)
    return str(users.write_nkey_file(out / f"{user}.nk", text))


@pytest.fixture(scope="module")
def nkey_seed(tmp_path_factory, nats_server_bin, _seed_secret_cache):
    handle = _start_seed(tmp_path_factory.mktemp("nkey-seed"), nats_server_bin, _seed_secret_cache)
    yield handle
    with contextlib.suppress(Exception):
        handle.stop()


def test_nkey_monitors_publish_and_receive(nkey_seed, make_agent, tmp_path):
    creds = _seed_file(nkey_seed, "monitor", tmp_path)
    b = make_agent(agent_env(nkey_seed.url, tmp_path / "b", FEDERATION_CREDENTIALS=creds))
    wait_for(lambda: b.status()["connected"], what="B connected with the nkey")
    a = make_agent(agent_env(nkey_seed.url, tmp_path / "a", FEDERATION_CREDENTIALS=creds))
    wait_for(lambda: a.status()["connected"], what="A connected with the nkey")
    a.submit_task_event(task_event("received", EXEC_ID, chain_id=1, block_number=1, task_type="js"))
    rows = wait_for(lambda: b.store.query_federation_tasks(10)[0], what="A's task at B")
    assert rows[0].source_node == a.identity.node_id and rows[0].status == "received"


async def _enrolled_publish(url: str, seed_file: str) -> tuple[list[str], list[str]]:
    """Publish as NODE_A on its own subject and on NODE_B's; (errors seen, subjects delivered)."""
    errors: list[str] = []

    async def on_error(exc):
        errors.append(str(exc))

    nc = await nats.connect(url, nkeys_seed=seed_file, error_cb=on_error, allow_reconnect=False)
    watcher = await nats.connect(url, nkeys_seed=seed_file, allow_reconnect=False)
    try:
        sub = await watcher.subscribe("tbfed.v1.>")
        await watcher.flush()
        await nc.publish(f"tbfed.v1.task.{NODE_B}", b'{"v":1}')  # impersonation: the seed refuses
        await nc.publish(f"tbfed.v1.task.{NODE_A}", b'{"v":1}')
        await nc.flush()
        delivered = []
        with contextlib.suppress(nats.errors.TimeoutError):
            while True:
                delivered.append((await sub.next_msg(timeout=0.5)).subject)
        return errors, delivered
    finally:
        await nc.close()
        await watcher.close()


def test_enrolled_nkey_user_cannot_publish_for_another_node(nkey_seed, tmp_path):
    errors, delivered = asyncio.run(_enrolled_publish(nkey_seed.url, _seed_file(nkey_seed, NODE_A, tmp_path)))
    assert delivered == [f"tbfed.v1.task.{NODE_A}"]
    assert any("permissions violation" in e.lower() and f"tbfed.v1.task.{NODE_B}" in e for e in errors), (
        errors
    )


def test_wrong_seed_is_fed_002_and_never_shown(nkey_seed, make_agent, tmp_path):
    stranger = users.generate_nkey_seed()
    path = tmp_path / "stranger.nk"
    secrets.write_private(path, stranger + "\n")
    agent = make_agent(agent_env(nkey_seed.url, tmp_path / "x", FEDERATION_CREDENTIALS=str(path)))
    status = wait_for(lambda: (s := agent.status())["state"] == "ERROR" and s, what="refused nkey")
    assert status["lastError"]["code"] == "FED_002" and not status["connected"]
    assert stranger not in str(status)


def test_start_up_refuses_unusable_credentials_and_half_a_client_certificate(tmp_path):
    good = users.generate_nkey_seed()
    damaged = good[:30] + ("A" if good[30] != "A" else "B") + good[31:]
    for content in ("just some words\n", damaged + "\n", "", ":nouser\n"):
        path = tmp_path / "creds"
        path.write_text(content)
        with pytest.raises(ConfigError) as err:
            load_config({"FEDERATION_CREDENTIALS": str(path), "DATA_DIR": str(tmp_path)})
        assert str(err.value).startswith(f"invalid FEDERATION_CREDENTIALS='{path}': expected a file holding")
        assert "\n" not in str(err.value) and (not content.strip() or content.strip() not in str(err.value))
    for content, kind in ((good + "\n", "nkey"), (f"# monitor's seed\n{good}\n", "nkey"), ("u:p\n", "pw")):
        path.write_text(content)
        assert load_config({"FEDERATION_CREDENTIALS": str(path), "DATA_DIR": str(tmp_path)}).credentials_file

    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="^invalid FEDERATION_TLS_KEY=''"):
        load_config({"FEDERATION_TLS_CERT": str(cert), "DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="^invalid FEDERATION_TLS_CERT=''"):
        load_config({"FEDERATION_TLS_KEY": str(cert), "DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="FEDERATION_TLS_KEY=.*existing, readable file"):
        load_config(
            {
                "FEDERATION_TLS_CERT": str(cert),
                "FEDERATION_TLS_KEY": str(tmp_path / "missing.pem"),
                "DATA_DIR": str(tmp_path),
            }
        )


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, nats_server_bin, _seed_secret_cache):
    """A seed requiring client certificates signed by the client CA (mutual TLS), and the files."""
    d = tmp_path_factory.mktemp("mtls")
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_pem.write_to_path(str(d / "key.pem"))
    server.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    server_ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client_ca.cert_pem.write_to_path(str(d / "client-ca.pem"))
    client = client_ca.issue_cert("monitor@tbfed")
    client.private_key_pem.write_to_path(str(d / "client-key.pem"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    tls = {"cert": d / "cert.pem", "key": d / "key.pem", "ca": d / "client-ca.pem"}
    handle = _start_seed(d, nats_server_bin, _seed_secret_cache, tls=tls)
    yield handle, d
    with contextlib.suppress(Exception):
        handle.stop()


def test_mutual_tls_client_certificate_connects_and_none_is_fed_008(mtls, make_agent, tmp_path):
    seed, d = mtls
    creds = _seed_file(seed, "monitor", tmp_path)
    env = {"FEDERATION_CREDENTIALS": creds, "FEDERATION_TLS_CA": str(d / "ca.pem")}
    with_cert = make_agent(
        agent_env(
            seed.url,
            tmp_path / "with",
            FEDERATION_TLS_CERT=str(d / "client.pem"),
            FEDERATION_TLS_KEY=str(d / "client-key.pem"),
            **env,
        )
    )
    without = make_agent(agent_env(seed.url, tmp_path / "without", FEDERATION_TLS_ENABLED="true", **env))
    wait_for(lambda: with_cert.status()["connected"], what="agent with a client certificate connected")
    assert with_cert.federation.connected_url().startswith("tls://")  # the certificate implies TLS
    status = wait_for(
        lambda: (s := without.status())["state"] == "ERROR" and s, what="no certificate refused"
    )
    assert status["lastError"]["code"] == "FED_008", status
