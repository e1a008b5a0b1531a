"""The nats_seed role in operator mode: seeds converged by `seedctl deploy` trust seedctl's operator,
run a full resolver preloaded with the account JWTs, admit an approved node without any change,
and take a revocation pushed through the system account on every host."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from seed import enroll
from seed.cli import cli
from seed.render import render_server
from tests.plugins.enrollment import issued_jwt, jwt_connect, make_node

from .cluster import make_cluster

pytestmark = [pytest.mark.ansible, pytest.mark.slow, pytest.mark.timeout(240)]


def test_role_runs_operator_mode_seeds_that_admit_and_revoke_without_redeploy(tmp_path, nats_server_bin):
    c = make_cluster(tmp_path / "c", nats_server_bin, servers=2)
    try:
        c.rewrite(users=None, auth={"mode": "operator"})
        res = CliRunner().invoke(
            cli, ["deploy", "--spec", str(c.spec_path), "-i", str(c.inventory)], env={"SEEDCTL_SPEC": None}
        )
        assert res.exit_code == 0, res.output
        assert "account JWTs -> seed-1: updated" in res.output and "account JWTs -> seed-2: updated" in res.output
        for name in c.names:
            conf = c.config_file(name).read_text()
            assert "resolver_preload" in conf and f"{c.host_dir(name)}/var/lib/nats-seed/jwt" in conf
            local = render_server(c.spec, c.spec.server(name))  # same template, only the resolver dir differs
            assert conf.replace(f"{c.host_dir(name)}/var/lib/nats-seed/jwt", "X") == local.replace(
                str(c.spec.state_dir / name / "jwt"), "X"
            )
        digests = {n: c.varz(n)["config_digest"] for n in c.names}

        node = make_node(tmp_path / "node")
        jwt = issued_jwt(enroll.approve(c.spec, node.request(), tmp_path / "out").credentials)
        urls = [s.client_url for s in c.spec.servers]

        async def connect_each():
            for url in urls:
                nc = await jwt_connect(url, jwt, node)
                await nc.close()

        asyncio.run(connect_each())  # admitted on both hosts, nothing redeployed
        entry, pushed = enroll.revoke(c.spec, node.node_id)
        assert pushed == {"seed-1": "updated", "seed-2": "updated"}
        for url in urls:
            with pytest.raises(Exception, match="Authorization Violation"):
                asyncio.run(jwt_connect(url, jwt, node))
        assert {n: c.varz(n)["config_digest"] for n in c.names} == digests
    finally:
        c.stop_all()
