"""monitor_agent.files.write_private: the one atomic 0600 write (API token, run file, seed secrets)."""

from __future__ import annotations

import os
import stat

import pytest

from monitor_agent.files import write_private


def test_private_write_is_0600_whatever_the_umask_and_replaces_whole(tmp_path):
    target = tmp_path / "sub" / "api-token"
    old = os.umask(0)
    try:
        write_private(target, "first\n")
        write_private(target, "second\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["api-token"]  # no temp file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "agent.json"
    write_private(target, "old")
    with pytest.raises(UnicodeEncodeError):
        write_private(target, "\udcff")  # unencodable: fails mid-write
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["agent.json"]
