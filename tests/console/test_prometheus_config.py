"""configs/prometheus: the scrape config and the alert rules are valid, and the rules fire as meant."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from seed.health.checks import CHECK_NAMES, HISTORY_CHECK_NAMES
from tests.plugins.tools import require_tool

CONF = Path(__file__).resolve().parents[2] / "configs" / "prometheus"


def promtool(*args: str, cwd: Path = CONF) -> subprocess.CompletedProcess:
    tool = require_tool("promtool")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_rules_are_valid_and_their_unit_tests_pass():
    check = promtool("check", "rules", "rules/seed-alerts.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", "seed-alerts.test.yml", cwd=CONF / "rules")
    assert test.returncode == 0, test.stdout + test.stderr


def test_me_vs_network_rules_are_valid_fire_as_meant_and_use_only_exported_gauges():
    check = promtool("check", "rules", "rules/agent-compare-alerts.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", "agent-compare-alerts.test.yml", cwd=CONF / "rules")
    assert test.returncode == 0, test.stdout + test.stderr
    from monitor_agent.compare import Comparator, CompareCollector

    exported = {m.name for m in CompareCollector(Comparator()).collect()}
    used = set(
        re.findall(
            r"\b(monitor_agent_compare_[a-z0-9_]+)", (CONF / "rules" / "agent-compare-alerts.yml").read_text()
        )
    )
    assert used and used <= exported, used - exported


def test_scrape_config_syntax():
    proc = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rules_only_use_metrics_and_checks_we_export():
    text = (CONF / "rules" / "seed-alerts.yml").read_text()
    checks = set(re.findall(r'check="([a-z_]+)"', text))
    assert checks <= set(CHECK_NAMES + HISTORY_CHECK_NAMES)
    exported = {
        "nats_seed_up", "nats_seed_check_status", "nats_seed_routes_live", "nats_seed_routes_expected",
        "nats_seed_connections", "nats_seed_max_connections", "nats_seed_slow_consumers_total",
        "nats_seed_config_drift", "nats_seed_tls_cert_expiry_seconds", "nats_seed_uptime_seconds",
        "seed_console_poll_seconds_count", "seed_console_poll_seconds_bucket",
        "nats_seed_history_bytes", "nats_seed_history_max_bytes",
    }  # fmt: skip
    used = set(re.findall(r"\b((?:nats_seed|seed_console)_[a-z_]+)", text))
    assert used <= exported, used - exported
