"""The one client of the nats-server monitoring port (8222 by default): `/varz`, `/healthz`, ...

`MonitorClient` (async, pooled: `seedctl health`, the console) and `Monitor` (sync: `seedctl
up/status/reload`, enrollment, benches) ask the same endpoints the same way, with one policy: a
timeout per request, no proxy from the environment, and every failure an `EndpointError` whose
message names the cause an operator can act on (connection refused, timeout, DNS, HTTP status,
not JSON), never a traceback. `/healthz` answers come back as `Healthz`, the type the health
checks also get from `--via nats` ($SYS HEALTHZ requests, seed/health/sysreq.py).
"""

from __future__ import annotations

import errno
import functools
import json
import socket
import ssl
from typing import Any, NamedTuple

import httpx

CONNZ_SORTS = (
    "cid", "start", "subs", "pending", "msgs_to", "msgs_from", "bytes_to", "bytes_from",
    "last", "idle", "uptime", "rtt",
)  # fmt: skip


class EndpointError(Exception):
    """A monitoring endpoint could not give usable JSON; `kind` says why in one word."""

    def __init__(self, kind: str, message: str, status_code: int | None = None):
        super().__init__(message)
        self.kind = kind  # refused | timeout | dns | network | http | not_json | bad_shape
        self.message = message
        self.status_code = status_code

    @property
    def transport(self) -> bool:
        """True when no HTTP answer came back at all (the server is unreachable)."""
        return self.kind in ("refused", "timeout", "dns", "network")


def _errnos(exc: BaseException) -> tuple[set[int], bool]:
    """Errnos found along the exception chain, and whether a DNS failure is among them."""
    found: set[int] = set()
    dns = False
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        seen += 1
        if isinstance(cur, socket.gaierror):
            dns = True
        if isinstance(cur, OSError) and cur.errno is not None:
            found.add(cur.errno)
        cur = cur.__cause__ or cur.__context__
    return found, dns


def describe_transport_error(exc: httpx.TransportError, url: str, timeout: float) -> EndpointError:
    """Turn an httpx transport failure into a cause an operator recognises."""
    host = httpx.URL(url).host
    if isinstance(exc, httpx.TimeoutException):
        return EndpointError("timeout", f"timed out after {timeout:g}s ({url})")
    nums, dns = _errnos(exc)
    text = str(exc)
    if dns or "Name or service not known" in text or "nodename nor servname" in text or "[Errno -" in text:
        return EndpointError("dns", f"DNS lookup failed for {host!r} ({url})")
    if errno.ECONNREFUSED in nums or "Connection refused" in text:
        return EndpointError("refused", f"connection refused ({url})")
    if nums & {errno.EHOSTUNREACH, errno.ENETUNREACH}:
        return EndpointError("network", f"host unreachable ({url})")
    return EndpointError("network", f"{type(exc).__name__}: {text or 'connection failed'} ({url})")


def _snippet(text: str, limit: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


class Healthz(NamedTuple):
    """A `/healthz` answer: 200 {"status":"ok"}, else 5xx/4xx {"status":"unavailable"|"error","error":...}."""

    status_code: int
    body: dict

    @property
    def status(self) -> str | None:
        return self.body.get("status")

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.status == "ok"


def _url(base_url: str, path: str) -> str:
    return f"{base_url}/{path.lstrip('/')}"


def _connz_params(sort: str, limit: int, offset: int, subs: bool) -> dict[str, Any]:
    if sort not in CONNZ_SORTS:
        raise ValueError(f"connz sort {sort!r} is not one of {', '.join(CONNZ_SORTS)}")
    params: dict[str, Any] = {"sort": sort, "limit": limit, "offset": offset}
    if subs:
        params["subs"] = 1
    return params


def _subsz_params(test: str | None, subs: bool, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if subs or test:
        params["subs"] = 1
    if test:
        params["test"] = test
    return params


def _jsz_params(account: str | None) -> dict[str, Any] | None:
    return {"acc": account, "streams": 1, "config": 1} if account else None


def _answer(path: str, url: str, resp: httpx.Response, allow_error_status: bool) -> tuple[int, dict]:
    """(HTTP status, JSON object) of one answer, or the EndpointError saying what is wrong with it."""
    if resp.status_code != 200 and not allow_error_status:
        raise EndpointError(
            "http", f"/{path} answered HTTP {resp.status_code}: {_snippet(resp.text)!r}", resp.status_code
        )
    try:
        body = json.loads(resp.content)
    except ValueError:
        ctype = resp.headers.get("content-type", "no content type").split(";")[0]
        raise EndpointError(
            "not_json",
            f"/{path} answered {ctype}, not JSON: {_snippet(resp.text)!r}",
            resp.status_code,
        ) from None
    if not isinstance(body, dict):
        raise EndpointError("bad_shape", f"/{path} answered JSON {type(body).__name__}, not an object")
    return resp.status_code, body


def _failed(exc: httpx.HTTPError, url: str, timeout: float) -> EndpointError:
    if isinstance(exc, httpx.TransportError):
        return describe_transport_error(exc, url, timeout)
    return EndpointError("network", f"{type(exc).__name__}: {exc} ({url})")  # invalid URL and the like


class MonitorClient:
    """The monitoring endpoints of one nats-server, e.g. `MonitorClient(http, "http://127.0.0.1:8222")`."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout: float = 2.0):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def get_json(self, path: str, params: dict[str, Any] | None = None, *, allow_error_status=False):
        """GET one endpoint and parse its JSON object; returns (http status, object)."""
        url = _url(self.base_url, path)
        try:
            resp = await self.http.get(url, params=params, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise _failed(exc, url, self.timeout) from None
        return _answer(path, url, resp, allow_error_status)

    async def healthz(self, **params) -> Healthz:
        """`/healthz` (see `Healthz`); an error status is an answer, not an EndpointError."""
        return Healthz(*await self.get_json("healthz", params or None, allow_error_status=True))

    async def varz(self) -> dict:
        return (await self.get_json("varz"))[1]

    async def connz(
        self, *, sort: str = "cid", limit: int = 1024, offset: int = 0, subs: bool = False
    ) -> dict:
        """`/connz`, one page; `sort` is one of CONNZ_SORTS (the server answers 400 to others)."""
        return (await self.get_json("connz", _connz_params(sort, limit, offset, subs)))[1]

    async def routez(self) -> dict:
        return (await self.get_json("routez"))[1]

    async def subsz(self, *, test: str | None = None, subs: bool = False, limit: int = 1024) -> dict:
        """`/subsz`; with `test`, only subscriptions matching that subject are listed (needs subs)."""
        return (await self.get_json("subsz", _subsz_params(test, subs, limit)))[1]

    async def leafz(self) -> dict:
        return (await self.get_json("leafz"))[1]

    async def gatewayz(self) -> dict:
        return (await self.get_json("gatewayz"))[1]

    async def accstatz(self) -> dict:
        return (await self.get_json("accstatz"))[1]

    async def jsz(self, *, account: str | None = None) -> dict:
        """`/jsz`; with `account`, that account's streams with their config, state and replicas."""
        return (await self.get_json("jsz", _jsz_params(account)))[1]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Built once: loading the CA bundle costs ~35 ms of CPU, and `httpx.get()` without `verify=`
    loads it on every call (a poll every 50 ms took most of a core). Pass it to every client and
    every one-off request."""
    return httpx.create_ssl_context()


def http_get(url: str, **kw: Any) -> httpx.Response:
    """`httpx.get` with the CA bundle loaded once (`tls_context`): the one way to make a one-off
    request, above all in a polling loop."""
    kw.setdefault("verify", tls_context())
    return httpx.get(url, **kw)


def new_http_client(max_connections: int = 32) -> httpx.AsyncClient:
    """One pooled client for many servers; monitoring is plain HTTP on loopback or a tunnel."""
    return httpx.AsyncClient(
        verify=tls_context(),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": "seedctl-health"},
        follow_redirects=False,
        trust_env=False,  # an operator's HTTP_PROXY must not swallow 127.0.0.1:8222
    )


class Monitor:
    """The same endpoints of one nats-server, synchronously: `Monitor(server.monitor_url).varz()`.

    Pass `http` (an httpx.Client) to reuse connections across servers; otherwise each call makes
    a short-lived one (no proxy from the environment either way)."""

    def __init__(self, base_url: str, timeout: float = 2.0, http: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = http

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, allow_error_status: bool = False
    ) -> tuple[int, dict]:
        url = _url(self.base_url, path)
        try:
            if self.http is not None:
                resp = self.http.get(url, params=params, timeout=self.timeout)
            else:
                resp = http_get(url, params=params, timeout=self.timeout, follow_redirects=False, trust_env=False)
        except httpx.HTTPError as exc:
            raise _failed(exc, url, self.timeout) from None
        return _answer(path, url, resp, allow_error_status)

    def healthz(self, **params) -> Healthz:
        return Healthz(*self.get_json("healthz", params or None, allow_error_status=True))

    def healthy(self) -> bool:
        """`/healthz` answered ok (any failure: False)."""
        try:
            return self.healthz().ok
        except EndpointError:
            return False

    def varz(self) -> dict:
        return self.get_json("varz")[1]

    def connz(self, *, sort: str = "cid", limit: int = 1024, offset: int = 0, subs: bool = False) -> dict:
        return self.get_json("connz", _connz_params(sort, limit, offset, subs))[1]

    def routez(self) -> dict:
        return self.get_json("routez")[1]

    def subsz(self, *, test: str | None = None, subs: bool = False, limit: int = 1024) -> dict:
        return self.get_json("subsz", _subsz_params(test, subs, limit))[1]

    def jsz(self, *, account: str | None = None) -> dict:
        return self.get_json("jsz", _jsz_params(account))[1]
