"""Attacks on the real `seedctl console`: bad parameters, fuzzing, password guessing from many
addresses, copied session cookies."""

from __future__ import annotations

import re
import socket
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st


def client(console, source: str = "127.0.0.1") -> httpx.Client:
    """A browser on loopback address `source` (each address has its own failed-login allowance)."""
    return httpx.Client(base_url=console.base_url, timeout=10, trust_env=False,
                        transport=httpx.HTTPTransport(local_address=source))  # fmt: skip


def csrf(c: httpx.Client, path: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text).group(1)


def login(c: httpx.Client, password: str) -> httpx.Response:
    return c.post("/login", data={"csrf_token": csrf(c), "password": password})


@pytest.fixture(scope="module")
def console(console_process_factory):
    return console_process_factory(start_seed=True)


@pytest.fixture(scope="module")
def operator(console):
    c = client(console)
    assert login(c, console.password).status_code == 302
    yield c
    c.close()


@pytest.mark.slow
def test_bad_parameters_are_400_naming_them(console, operator):
    r = operator.get("/server/seed-1?page=%C2%B2")  # '²' is a digit to str.isdigit()
    assert r.status_code == 400 and "page=" in r.text, r.text[:300]
    r = operator.get(f"/api/seeds/seed-1/history?since={'9' * 400}d")
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["message"].startswith("since=")
    r = operator.get("/server/seed-1?window=1y")
    assert r.status_code == 400 and "window=" in r.text
    r = operator.get("/alerts?partial=yes")
    assert r.status_code == 400 and "partial=" in r.text
    r = operator.get("/api/seeds?debug=1")
    assert r.status_code == 400 and "unknown parameter 'debug'" in r.json()["error"]["message"]
    r = operator.get("/api/seeds/seed-1/history?metric=connections&metric=mem_bytes")
    assert r.status_code == 400 and "'metric' is given 2 times" in r.json()["error"]["message"]
    assert operator.get("/server/seed-1?page=3&window=24h&partial=1").status_code == 200


ROUTES = {
    "/": ["partial"],
    "/cluster": ["partial"],
    "/alerts": ["partial"],
    "/server/{name}": ["partial", "window", "page"],
    "/api/seeds": [],
    "/api/seeds/{name}/health": [],
    "/api/seeds/{name}/history": ["metric", "since"],
    "/login": ["next"],
}
TRICKY = ["", "0", "1", "-1", "²", "٣", "1e3", "9" * 400, "9" * 400 + "d", "nan", "inf", "1h", "7d", "24h",
          "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00-23:59", "\x00", "%", "../..", "é" * 50,
          "connections", "mem_bytes", "//evil.example"]  # fmt: skip
values = st.one_of(st.sampled_from(TRICKY), st.text(max_size=60), st.integers().map(str))
names = st.one_of(st.just("seed-1"), st.sampled_from(["nope", "seed-1.", "..", "%2e%2e", "é"]), st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=30))  # fmt: skip


@st.composite
def requests_(draw):
    route = draw(st.sampled_from(sorted(ROUTES)))
    known = ROUTES[route]
    keys = st.sampled_from(known) if known else st.nothing()
    params = draw(st.lists(st.tuples(st.one_of(keys, st.text(max_size=10)), values), max_size=4))
    return route.replace("{name}", quote(draw(names), safe="")), params


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(req=requests_())
@example(req=("/server/seed-1", [("page", "²")]))
@example(req=("/api/seeds/seed-1/history", [("since", "9" * 400 + "d")]))
def test_fuzzing_the_console_finds_no_server_error(console, operator, req):
    path, params = req
    r = operator.get(path, params=params)
    assert r.status_code < 500, (path, params, r.status_code, r.text[:300])
    if r.status_code == 400 and path.startswith("/api/"):
        assert r.json()["error"]["code"] == "bad_request"


@pytest.mark.slow
def test_fuzzed_login_forms_find_no_server_error(console):
    with client(console, "127.4.0.1") as c:
        token = csrf(c)
        for form in ({"password": "x" * 5000}, {"password": "é\x00"}, {"next": "//evil"}, {"next": "\x00"},
                     {"password": ["a", "b"]}, {}):  # fmt: skip
            r = c.post("/login", data={"csrf_token": token, **form})
            assert r.status_code < 500, (form, r.status_code)


@pytest.mark.slow
def test_copied_session_cookie_is_dead_after_logout(console):
    with client(console) as owner, client(console) as thief:
        assert login(owner, console.password).status_code == 302
        thief.cookies.update(owner.cookies)  # the cookie, copied (stolen, or left in a proxy log)
        assert thief.get("/api/seeds").status_code == 200
        token = csrf(owner, "/")
        assert owner.post("/logout", data={"csrf_token": token}).status_code == 302
        assert thief.get("/api/seeds").status_code == 401
        assert thief.get("/").status_code == 302


@pytest.mark.slow
def test_password_change_ends_every_session(console_process_factory):
    console = console_process_factory()
    with client(console) as c:
        assert login(c, console.password).status_code == 302
        assert c.get("/api/seeds").status_code == 200
        new_password = "changed-" + "x" * 24
        (console.secrets_dir / "console.password").write_text(new_password + "\n")
        assert c.get("/api/seeds").status_code == 401
    with client(console) as c:
        assert login(c, console.password).status_code == 401  # the old password is gone
    with client(console) as c:
        assert login(c, new_password).status_code == 302


def raw_login(port: int, source: str, cookie: str, token: str, password: str) -> tuple[int, int]:
    """One login POST from `source` (a loopback address); (status, Retry-After or 0)."""
    body = f"csrf_token={quote(token)}&password={quote(password)}".encode()
    head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    with socket.socket() as s:
        s.settimeout(30)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    m = re.search(rb"\r\nRetry-After: (\d+)", data, re.I)
    return status, int(m.group(1)) if m else 0


def source(i: int) -> str:
    return f"127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256 or 1}"


@pytest.mark.slow
def test_guessing_from_10000_addresses_is_delayed_and_the_operator_still_gets_in(console_process_factory):
    console = console_process_factory()
    operator = client(console)
    assert login(operator, console.password).status_code == 302  # the operator's usual browser
    assert operator.post("/logout", data={"csrf_token": csrf(operator, "/")}).status_code == 302

    attacker = client(console)
    token = csrf(attacker)
    cookie = "; ".join(f"{k}={v}" for k, v in attacker.cookies.items())
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def guess(i: int) -> None:
        status, _ = raw_login(console.port, source(i), cookie, token, f"guess-{i}")
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(guess, range(300)))
        # Changing address for every guess must not buy a password check each.
        assert statuses.get(401, 0) <= 60, f"{statuses}: guesses from new addresses were all checked"
        list(pool.map(guess, range(300, 10_000)))
    attacker.close()
    assert sum(statuses.values()) == 10_000 and statuses.get(429, 0) >= 9_000, statuses
    assert set(statuses) <= {401, 429}, statuses

    # The 10 001st attempt, from an address never seen before, is still delayed ...
    fresh = client(console, "127.3.0.1")
    t0 = time.monotonic()
    r = login(fresh, console.password)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.status_code
    assert "try again in" in r.text and time.monotonic() - t0 < 5  # answered at once, not held
    fresh.close()

    # ... while the operator's browser, from the same address as many guesses, gets in at once.
    r = login(operator, console.password)
    assert r.status_code == 302, r.text[:300]
    assert operator.get("/api/seeds").status_code == 200
    operator.close()
