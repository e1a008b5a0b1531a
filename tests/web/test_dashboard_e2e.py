"""The dashboard in real headless Chromium: two agents on one real seed.

Agent A publishes a task; it appears in agent B's Network feed within 2 s, without a reload.
Stopping the seed turns B's badge to Reconnecting; restarting it turns it back to Connected.
Every tab is screenshotted at desktop and phone width under the test's tmp dir.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from .conftest import local_event

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TABS = ("node", "network", "settings", "privacy")


def wait_state(running, state: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.get("/api/federation/status").json()["state"] == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"agent never reached {state}")


def badge(page) -> str:
    return page.inner_text("#fed-state")


def shoot_all_tabs(page, base_url: str, out_dir, suffix: str) -> None:
    for tab in TABS:
        page.goto(f"{base_url}/" + ("" if tab == "node" else tab))
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out_dir / f"{tab}-{suffix}.png"), full_page=True)


def test_live_feed_reconnect_badge_and_every_tab(agent_factory, seed, browser, tmp_path):
    screens = tmp_path / "screens"
    screens.mkdir()
    env = {
        "ENABLE_FEDERATION": "true",
        "FEDERATION_SEED_URL": seed.url_for("monitor"),
        "FEDERATION_RECONNECT_TIMEOUT": "300",
    }
    a = agent_factory({**env, "FEDERATION_REGION": "EU-WEST"})
    b = agent_factory({**env, "FEDERATION_REGION": "ASIA"})
    wait_state(a, "CONNECTED")
    wait_state(b, "CONNECTED")
    a_id = a.get("/api/federation/status").json()["nodeId"]

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(b.base_url + "/")
        page.click("#tab-network")
        page.wait_for_url(b.base_url + "/network")
        expect(page.locator("#live-state")).to_have_text("on", timeout=5000)
        assert badge(page) == "Connected"
        page.evaluate("window.__noReload = true")

        # Agent A's node runs a task: A publishes it, B stores it and pushes it to the browser.
        t0 = time.monotonic()
        a.agent.submit_task_event(
            local_event("received", "9a8b7c6d-0000-4000-8000-0000000000e2", chain_id=43114, task_type="wasm")
        )
        row = page.wait_for_selector("#global-feed tbody tr[data-task-id^='global-task-']", timeout=2000)
        latency = time.monotonic() - t0
        assert latency < 2.0
        text = row.inner_text()
        assert "43114" in text and "received" in text and a_id in text
        assert "↓" in text  # the status icon app.js takes from the page (dashboard.TASK_ICONS)
        assert "9a8b7c6d" not in page.content(), "the execution id never leaves node A"
        assert page.evaluate("window.__noReload") is True, "updated live, not by a reload"
        page.wait_for_selector("#chain-chart svg", timeout=3000)  # the per-minute chart drew the task
        page.screenshot(path=str(screens / "network-live.png"), full_page=True)

        # The seed goes away: the badge says so in words (and icon), then recovers.
        seed.stop()
        expect(page.locator("#fed-state")).to_have_text("Reconnecting", timeout=15000)
        assert page.inner_text("#fed-badge .badge-icon") == "↻"
        page.screenshot(path=str(screens / "network-reconnecting.png"), full_page=True)
        seed.start()
        expect(page.locator("#fed-state")).to_have_text("Connected", timeout=20000)
        assert page.evaluate("window.__noReload") is True

        # Node tab of A shows its own task; Privacy of A shows the exact outgoing message.
        a.agent.submit_task_event(
            local_event(
                "completed", "9a8b7c6d-0000-4000-8000-0000000000e2", execution_time_ms=412, exit_code=0,
                at=datetime.now(UTC),
            )
        )  # fmt: skip
        page.goto(a.base_url + "/")
        page.wait_for_selector("#exec-chart svg", timeout=5000)
        assert "completed" in page.inner_text("#local-tasks tbody")
        page.goto(a.base_url + "/privacy")
        outbox = page.inner_text("#outbox")
        assert '"event":"task_received"' in outbox and '"chainId":43114' in outbox
        assert "9a8b7c6d" not in outbox

        # Settings: a wrong token is refused in plain words; the right one saves.
        page.goto(b.base_url + "/settings")
        page.fill("#token", "wrong-token-wrong-token")
        page.uncheck("input[name=broadcastStats]")
        page.click("#save-settings")
        expect(page.locator("#settings-result")).to_contain_text("token is missing or wrong")
        page.fill("#token", b.token)
        page.click("#save-settings")
        expect(page.locator("#settings-result")).to_contain_text("Saved")
        assert b.get("/api/federation/settings").json()["broadcastStats"] is False
        # Erasure needs a second, explicit confirmation.
        page.click("#erase-start")
        assert page.is_visible("#erase-confirm")
        page.click("#erase-yes")
        expect(page.locator("#erase-result")).to_contain_text("Deleted")
        assert b.get("/api/federation/tasks/global").json()["total"] == 0

        shoot_all_tabs(page, a.base_url, screens, "desktop")
    finally:
        context.close()

    phone = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True)
    try:
        p = phone.new_page()
        p.on("pageerror", lambda exc: errors.append(str(exc)))
        shoot_all_tabs(p, a.base_url, screens, "375")
        for tab in TABS:
            p.goto(f"{a.base_url}/" + ("" if tab == "node" else tab))
            width = p.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{tab} tab scrolls sideways at 375 px ({width} px wide)"
    finally:
        phone.close()
    assert not errors, errors
    assert len(list(screens.glob("*.png"))) == 10
