"""Slow clients (slowloris) against the real `monitor-agent run` and `seedctl console`.

The attack: open more connections than the server has threads and send each only part of a
request (half a request line, headers without their end, a body that never completes), then
keep them open. The defence: requests are read to their end without holding a thread, so the
API keeps answering, and a request that does not arrive in time is dropped.
"""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

SLOW_SOCKETS = 40  # more than the agent's 32 threads and the console's 8

PARTIAL_REQUESTS = {
    "half-request-line": b"GET /api/health HT",
    "headers-never-end": b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n",
    "body-never-completes": (
        b"POST /api/federation/settings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"enabled":'
    ),
    "chunked-body-never-ends": (
        b"POST /api/federation/settings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ena\r\n'
    ),
    "second-request-on-keep-alive": (
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /api/health HTTP/1.1\r\nHost: 1"
    ),
}


def open_slow_sockets(port: int, payload: bytes, n: int = SLOW_SOCKETS) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(payload)
        socks.append(s)
    time.sleep(0.5)  # let the server pick them up (a thread-per-request server commits a thread)
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


def answer_times(url: str, n: int = 5) -> list[float]:
    """Seconds each of `n` GETs took; fails on a timeout or a non-200."""
    times = []
    with httpx.Client(timeout=3, trust_env=False) as client:
        for _ in range(n):
            t0 = time.monotonic()
            try:
                r = client.get(url)
            except httpx.TimeoutException:
                pytest.fail(f"{url} did not answer within 3 s while slow clients were connected")
            times.append(time.monotonic() - t0)
            assert r.status_code == 200, r.text
    return times


@pytest.fixture(scope="module")
def agent(agent_process_factory):
    return agent_process_factory()


@pytest.fixture(scope="module")
def console(console_process_factory):
    return console_process_factory()


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(PARTIAL_REQUESTS))
def test_slow_clients_do_not_block_the_agent_api(agent, kind):
    socks = open_slow_sockets(agent.port, PARTIAL_REQUESTS[kind])
    try:
        times = answer_times(f"{agent.base_url}/api/health")
        assert max(times) < 1.0, f"/api/health took {max(times):.2f} s with {SLOW_SOCKETS} slow clients"
    finally:
        close_all(socks)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["half-request-line", "headers-never-end", "second-request-on-keep-alive"])
def test_slow_clients_do_not_block_the_console(console, kind):
    socks = open_slow_sockets(console.port, PARTIAL_REQUESTS[kind].replace(b"/api/health", b"/healthz"))
    try:
        times = answer_times(f"{console.base_url}/healthz")
        assert max(times) < 1.0, f"/healthz took {max(times):.2f} s with {SLOW_SOCKETS} slow clients"
    finally:
        close_all(socks)


@pytest.mark.slow
def test_a_request_that_never_completes_is_dropped(agent):
    """A client that never finishes its request is answered 408 and disconnected within the read
    timeout (10 s), so it cannot keep a connection slot forever either."""
    socks = open_slow_sockets(agent.port, PARTIAL_REQUESTS["headers-never-end"], n=3)
    try:
        deadline = time.monotonic() + 15
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except TimeoutError:
                pytest.fail("the server kept a request that never completed open for over 15 s")
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
    finally:
        close_all(socks)


@pytest.mark.slow
def test_more_slow_clients_than_file_descriptors_do_not_restart_the_agent(agent_process_factory):
    """With 256 open files allowed (hard limit), 400 slow connections: the oldest unfinished
    requests are dropped to make room; the worker (and with it the agent) is never restarted
    by a failing accept(), and the API keeps answering."""
    small = agent_process_factory(nofile=256)
    socks = []
    try:
        for _ in range(400):
            try:
                s = socket.create_connection(("127.0.0.1", small.port), timeout=2)
                s.sendall(PARTIAL_REQUESTS["headers-never-end"])
            except OSError:
                continue  # the client side may run short of nothing, the server sheds
            socks.append(s)
        time.sleep(1.0)
        times = answer_times(f"{small.base_url}/api/health")
        assert max(times) < 1.0, times
    finally:
        close_all(socks)
    log = small.output()
    assert log.count("Booting worker") == 1, log[-3000:]
    assert "Too many open files" not in log
