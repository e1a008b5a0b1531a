"""Docs that cannot drift: the shell blocks of README.md and docs/operations.md run as written
(tests/docs/mdrun.py: one bash session per document in a bare sandbox, against the real seed,
console, agents and ansible-runner they start), and the first ten minutes of docs/quickstart.md
end with two agents exchanging tasks, with no manual edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.tools import require_tool

from . import mdrun
from .first_ten_minutes import play

# A document is a whole operator session (tens of commands, servers, an Ansible run): minutes on a
# loaded 2-core machine, so more than the suite's default per-test timeout.
pytestmark = pytest.mark.timeout(900)

ROOT = mdrun.ROOT
FIXTURES = ROOT / "tests" / "fixtures" / "node-logs"
PLACEHOLDERS = {
    "/path/to/debug/": f"{FIXTURES / 'debug'}/",
    "/path/to/...-eventDB.json": str(next((FIXTURES / "eventdb").glob("*-eventDB.json"))),
}


@pytest.fixture(autouse=True)
def _tools():
    for tool in ("curl", "jq", "openssl"):  # what the documents' commands use beside ours
        require_tool(tool)


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_every_runnable_shell_block_runs_as_written(doc, tmp_path):
    run = mdrun.run(ROOT / doc, tmp_path / "machine", placeholders=PLACEHOLDERS)
    try:
        assert run.returncode == 0, run.output[-6000:]
        assert "docs-test: every block ran" in run.output
    finally:
        run.stop()
    assert run.blocks_run >= 2
    for block in run.blocks_skipped:  # each skip says why it cannot run on one machine
        assert len(block.skip) > 10, f"{doc}:{block.line}"


def test_first_ten_minutes_two_agents_exchange_tasks_with_no_manual_edit(tmp_path):
    figures, run = play(tmp_path / "machine")
    try:
        assert figures["docReturncode"] == 0, figures.get("output")
        assert figures["manualEdits"] == 0
        assert figures["states"] == {"a": "CONNECTED", "b": "CONNECTED"}
        assert figures["exchanged"], figures
        assert figures["secondsToExchange"] < 600
    finally:
        run.stop()


def test_a_skip_without_a_reason_is_refused(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- docs-test: skip -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        mdrun.blocks(Path(doc))
