"""The fleet lab (tests/lab): ONE set of throwaway systemd hosts per test session, shared by every
lab test. If the lab cannot start, the lab tests fail in CI with one line saying why (skipped on
a developer machine that is not root or lacks the tools)."""

from __future__ import annotations

import os

import pytest

from tests.plugins.tools import IN_CI

LAB_HOSTS = int(os.environ.get("TBLAB_HOSTS", "5"))


@pytest.fixture(scope="session")
def lab():
    from tests import lab as lablib

    try:
        lablib.check_prerequisites()
    except lablib.LabError as e:
        if IN_CI:
            pytest.fail(f"lab cannot start: {e}", pytrace=False)
        pytest.skip(f"lab cannot start here: {e}")
    try:
        running = lablib.up(LAB_HOSTS)
    except lablib.LabError as e:
        pytest.fail(f"lab cannot start: {e}", pytrace=False)
    try:
        yield running
    finally:
        running.down()


@pytest.fixture
def healed(lab):
    """The lab network as it was, even when the test fails mid-fault."""
    try:
        yield lab
    finally:
        lab.heal()
