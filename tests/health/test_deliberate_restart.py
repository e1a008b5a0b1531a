"""`seedctl health` after a deliberate `seedctl down` + `seedctl up`: no warning (issue 18).

Before: exit 1, WARNING "restarted 1m2s ago", for the whole 10-minute window after an operator's
own start. A restart nobody asked for (a process started outside seedctl) still warns.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from seed import lifecycle
from seed.cli import cli


def _restart(handle) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["health", "--spec", str(handle.spec_path), "--format", "json"])
    report = json.loads(result.output)
    srv = report["servers"][0]
    return result.exit_code, next(c for c in srv["checks"] if c["check"] == "restart")


def test_a_restart_by_seedctl_up_is_not_a_warning(seed, nats_server_bin):
    code, first = _restart(seed)  # remembers the start time
    assert code == 0 and first["status"] == "OK"
    seed.stop()
    seed.start()
    code, check = _restart(seed)
    assert check["status"] == "OK" and "started by seedctl" in check["reason"], check
    assert code == 0

    # the same restart, but the recorded start is not this process's: a warning, as before
    applied = lifecycle.server_dir(seed.spec, seed.names[0], seed.state_dir) / lifecycle.APPLIED_FILE
    data = json.loads(applied.read_text())
    data["started_at"] = "2020-01-01T00:00:00Z"
    applied.write_text(json.dumps(data))
    code, check = _restart(seed)
    assert check["status"] == "WARNING" and code == 1, check
