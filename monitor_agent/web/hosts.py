"""The Host allow-list of the agent and of the console (defence against DNS rebinding).

A web page on a name the attacker controls can make that name resolve to 127.0.0.1 and then
read anything the browser can reach there: the browser thinks it talks to the attacker's own
site. What gives it away is the Host header, which carries the attacker's name. So every
request (every route, and the /ws handshake) must name this server by a name it knows:

- loopback names and addresses (`localhost`, 127.0.0.0/8, ::1), always;
- the address the server is bound to, when it is a specific one (not 0.0.0.0 or ::);
- the names the operator lists (`MONITOR_ALLOWED_HOSTS` for the agent, `console.allowed_hosts`
  or `seedctl console --allowed-host` for the console), e.g. the name a reverse proxy uses.

Anything else is answered 421 Misdirected Request before the app sees it. The port is not
compared (a published container port or a tunnel changes it; the name is what rebinding forges).
Pure module: no Flask, so `seed.console` shares it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


def normalize_host(value: str) -> str | None:
    """A host name or IP address as given in a setting (no port, no scheme), lowercased and
    without brackets or a trailing dot; None if it is neither."""
    name = value.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    return name if _NAME_RE.match(name) else None


def host_name(header: str) -> str | None:
    """The name in a Host header (`name`, `name:port`, `[v6]:port`), normalized; None if malformed."""
    value = header.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not re.fullmatch(r":[0-9]{1,5}", value[end + 1 :])):
            return None
        name = value[1:end]
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            return None
    name, sep, port = value.partition(":")
    if sep and not re.fullmatch(r"[0-9]{1,5}", port):
        return None
    return normalize_host(name) if name else None


class HostAllowList:
    """Which Host names this server answers to (see the module docstring)."""

    def __init__(self, bind_host: str | None = None, extra: Iterable[str] = ()):
        names = set(LOOPBACK_NAMES)
        if bind_host and bind_host.strip("[]") not in ("0.0.0.0", "::", ""):
            bound = normalize_host(bind_host)
            if bound:
                names.add(bound)
        for item in extra:
            name = normalize_host(item)
            if name is None:
                raise ValueError(f"{item!r} is not a host name or IP address")
            names.add(name)
        self.names = frozenset(names)

    def allows_name(self, name: str | None) -> bool:
        if name is None:
            return False
        if name in self.names:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def allows(self, header: str | None) -> bool:
        """Whether a Host header names this server. No Host at all (HTTP/1.0 tools) is allowed:
        browsers always send one."""
        if header is None:
            return True
        return self.allows_name(host_name(header))


class HostGuard:
    """WSGI middleware: 421 with the API's error shape for a Host not on the allow-list."""

    def __init__(self, app: Callable, allowed: HostAllowList, setting: str):
        self.app = app
        self.allowed = allowed
        self.setting = setting  # named in the answer: how the operator adds a name

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST")
        if self.allowed.allows(host):
            return self.app(environ, start_response)
        shown = (host or "")[:100]
        body = json.dumps(
            {
                "error": {
                    "code": "misdirected_request",
                    "message": f"Host {shown!r} is not a name of this server: "
                    f"add it to {self.setting} if it is (loopback names always work)",
                }
            }
        ).encode()
        start_response(
            "421 Misdirected Request",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]
