"""The console in real headless Chromium: log in, watch a seed card turn CRITICAL when it stops."""

from __future__ import annotations

import pytest


@pytest.mark.browser
@pytest.mark.slow
def test_card_turns_critical_live_when_the_seed_stops(seed_factory, console_factory, page, tmp_path):
    handle = seed_factory(servers=3)
    console = console_factory(handle, interval=0.5, refresh_s=1)
    console.wait_rounds(2)

    page.goto(console.base_url + "/")
    assert page.url.startswith(console.base_url + "/login")
    page.fill("#password", console.password)
    page.click("button[type=submit]")
    page.wait_for_url(console.base_url + "/")

    card = page.locator('article.card[data-seed="seed-2"]')
    page.wait_for_function(
        "() => [...document.querySelectorAll('article.card')].every(c => c.dataset.status === 'OK')",
        timeout=15000,
    )
    assert page.locator("article.card").count() == 3
    assert "2.15" in card.locator("dl.figures").inner_text()  # version from the real /varz
    page.screenshot(path=str(tmp_path / "overview-ok.png"), full_page=True)

    # mark the document: a full reload would lose this, the in-place refresh keeps it
    page.evaluate("() => { window.__noReload = true; }")
    handle.stop("seed-2")
    page.wait_for_function(
        "() => document.querySelector('article.card[data-seed=\"seed-2\"]').dataset.status === 'CRITICAL'",
        timeout=15000,
    )
    assert page.evaluate("() => window.__noReload === true")
    # A round that caught the server mid-shutdown says "Server disconnected"; the next says refused.
    page.wait_for_function(
        "() => document.querySelector('article.card[data-seed=\"seed-2\"]').innerText.includes('connection refused')",
        timeout=15000,
    )
    text = card.inner_text()
    assert "CRITICAL" in text and "connection refused" in text
    # the survivors' cards say which route is missing
    page.wait_for_function(
        "() => document.querySelector('article.card[data-seed=\"seed-1\"]').innerText.includes('missing routes to seed-2')",
        timeout=15000,
    )
    shot = tmp_path / "overview-critical.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
