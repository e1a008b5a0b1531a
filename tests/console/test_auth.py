"""Nothing of the console is reachable without the operator login, except its own /healthz."""

from __future__ import annotations

import re

import pytest

PAGES = ["/", "/server/seed-1", "/cluster", "/alerts", "/?partial=1"]
API = ["/api/seeds", "/api/seeds/seed-1/health", "/api/seeds/seed-1/history?metric=connections", "/metrics"]


def test_everything_needs_login_except_healthz(console):
    with console.client() as c:
        for path in PAGES:
            r = c.get(path)
            assert r.status_code == 302, path
            assert r.headers["location"].startswith("/login?next=")
        for path in API + ["/api/nope"]:
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json()["error"]["code"] == "unauthorized"
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/login").status_code == 200
        assert c.get("/static/console.css").status_code == 200


def test_login_sets_a_hardened_session_and_logout_ends_it(console):
    with console.client() as c:
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = c.post("/login", data={"csrf_token": token, "password": console.password, "next": "/alerts"})
        assert r.status_code == 302 and r.headers["location"] == "/alerts"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert c.get("/").status_code == 200
        assert c.get("/api/seeds").status_code == 200
        overview = c.get("/").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', overview).group(1)
        assert c.post("/logout", data={"csrf_token": token}).status_code == 302
        assert c.get("/").status_code == 302


def test_login_next_cannot_leave_the_site(console):
    with console.client() as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post(
            "/login", data={"csrf_token": token, "password": console.password, "next": "//evil.example/x"}
        )
        assert r.headers["location"] == "/"


def test_forms_without_the_csrf_token_are_refused(console):
    with console.client() as c:
        c.get("/login")
        r = c.post("/login", data={"password": console.password})
        assert r.status_code == 400 and r.json()["error"]["code"] == "csrf"
        console.login(c)
        r = c.post("/logout", data={})
        assert r.status_code == 400
        assert c.get("/").status_code == 200  # still logged in: the forged logout did nothing
        # A non-ASCII token is a plain refusal, not a 500 (compare_digest refuses non-ASCII str).
        r = c.post("/logout", data={"csrf_token": "été-forgé"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "csrf"
        r = c.post("/logout", headers={"X-CSRF-Token": "é".encode()})
        assert r.status_code == 400


@pytest.mark.slow
def test_failed_logins_are_rate_limited(console):
    with console.client() as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        codes = [
            c.post("/login", data={"csrf_token": token, "password": f"guess-{i}"}).status_code
            for i in range(5)
        ]
        assert codes == [401] * 5
        r = c.post("/login", data={"csrf_token": token, "password": console.password})
        assert r.status_code == 429  # even the right password waits: the limiter does not leak it
        assert int(r.headers["retry-after"]) > 0
        assert "Too many failed logins" in r.text


def test_metrics_accepts_its_bearer_token_only(console):
    with console.client() as c:
        assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer été".encode()}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": f"Bearer {console.metrics_token}"})
        assert r.status_code == 200
        assert 'nats_seed_up{seed="seed-1"} 1.0' in r.text
        # the token opens /metrics, nothing else
        assert (
            c.get("/api/seeds", headers={"Authorization": f"Bearer {console.metrics_token}"}).status_code
            == 401
        )
