"""The Node tab's "Me vs network" panel in real headless Chromium, at phone width (375 px).

Received rows go through the agent's real store writer (and its stored-rows callback into the
comparison), local tasks through `submit_task_event`; the panel is filled from /api/compare
and then kept live by `federation_compare` events on the WebSocket, without a reload.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from .conftest import add_federation_tasks, local_event

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _network(agent, chain: int, nodes: int, per_node: int, ms: int, failed_every: int = 0, start: int = 0):
    now = datetime.now(UTC)
    rows = []
    for n in range(nodes):
        for i in range(per_node):
            failed = failed_every and i % failed_every == 0
            rows.append(
                {
                    "task_id": f"global-task-{chain:04x}{n:02x}{i + start:06x}",
                    "source": f"node-peer{chain:03d}{n:03d}",
                    "chain": chain,
                    "status": "failed" if failed else "completed",
                    "ms": None if failed else ms + 10 * n + i % 7,
                    "at": now - timedelta(seconds=i),
                }
            )
    add_federation_tasks(agent, rows)


def _own(agent, chain: int, count: int, ms: int, prefix: str):
    for i in range(count):
        eid = f"{prefix}-{chain}-{i}"
        agent.submit_task_event(local_event("received", eid, chain_id=chain, task_type="wasm"))
        agent.submit_task_event(local_event("completed", eid, execution_time_ms=ms + i, exit_code=0))


def test_me_vs_network_panel_at_375px_live_over_the_websocket(agent_factory, browser, tmp_path):
    running = agent_factory()
    agent = running.agent
    _network(agent, 1, nodes=4, per_node=40, ms=400)
    _own(agent, 1, 35, ms=1500, prefix="slow")

    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(running.base_url + "/")
        chain1 = page.locator("#compare article[data-chain-id='1']")
        expect(chain1.locator(".verdict")).to_contain_text("Your node:", timeout=10000)
        expect(chain1.locator(".verdict")).to_contain_text("median execution time on chain 1")
        expect(chain1.locator(".rank")).to_have_text(
            "Your p50 execution time on chain 1 is slower than 100 % of 4 nodes."
        )
        table = chain1.locator("table.compare-table").inner_text()
        assert "p50 execution" in table and "Failure rate" in table and "Nodes\t1\t4" in table
        assert "1,5" in table  # this node's p50, about 1 517 ms
        assert chain1.locator("figure svg path").count() >= 1, "the chart draws both lines"
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scrolling at 375 px"
        box = chain1.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375

        # Live: a new chain appears through federation_compare, without a reload.
        page.evaluate("window.__noReload = true")
        _network(agent, 2, nodes=2, per_node=20, ms=300)
        chain2 = page.locator("#compare article[data-chain-id='2']")
        expect(chain2.locator(".verdict")).to_contain_text("Not enough data", timeout=20000)
        expect(chain2.locator(".verdict")).to_contain_text("2 other nodes (need 3), 0 own events (need 30)")
        assert page.evaluate("window.__noReload") is True

        page.screenshot(path=str(tmp_path / "node-375.png"), full_page=True)
        page.locator("#compare-panel").screenshot(path=str(tmp_path / "panel-375.png"))

        # The 24 h window on demand.
        page.click(".window-btn[data-window='24h']")
        expect(page.locator(".window-btn[data-window='24h']")).to_have_attribute("aria-pressed", "true")
        expect(chain1.locator("figure svg")).to_have_attribute(
            "aria-label", "p50 execution time on chain 1, this node and the network, per hour (UTC)"
        )
        assert errors == []
    finally:
        context.close()
