"""Fixtures of the lab tests: the operator's fleet on the session's lab (tests/plugins/lab.py)."""

from __future__ import annotations

import pytest

from tests.lab.fleet import make_fleet, replay_sample_log


@pytest.fixture(scope="session")
def fleet(lab, tmp_path_factory, nats_server_bin):
    """Spec + inventory for seeds on lab1-3 and monitors on lab4-5, and the release mirror."""
    f = make_fleet(lab, tmp_path_factory.mktemp("fleet"), nats_server_bin)
    try:
        yield f
    finally:
        f.mirror.close()


@pytest.fixture(scope="session")
def seeds(fleet):
    """The seed cluster converged from bare hosts by `seedctl deploy --playbook seed`."""
    r = fleet.seedctl("deploy", "--playbook", "seed")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    fleet.first_deploy = r
    return fleet


@pytest.fixture(scope="session")
def monitors(seeds):
    """Agents on lab4-5 converged by `seedctl deploy --playbook monitor`, federation on, each
    following the sample node log replayed with fresh timestamps just before."""
    for name in seeds.monitors:
        replay_sample_log(seeds.lab, name)
    r = seeds.seedctl("deploy", "--playbook", "monitor")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    return seeds
