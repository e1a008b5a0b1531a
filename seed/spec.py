"""The typed deployment spec: one YAML file describing one federation's seed servers.

`load_spec(path)` reads and fully validates it; every problem raises `SpecError` whose message
is `file:line: field: problem` (line numbers come from PyYAML's node marks). Nothing here
writes anything.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import yaml

from monitor_agent.protocol import DEFAULT_SUBJECT_PREFIX, NODE_ID_RE
from monitor_agent.web.hosts import normalize_host

from .secrets import NAME_RE
from .users import AUTH_KINDS, ROLES, UserSpec

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SUBJECT_RE = re.compile(r"^[^\s]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")

DEFAULT_MAX_PAYLOAD = 8 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class SpecError(Exception):
    """An invalid spec; the message is one line: `file:line: field: problem`."""

    def __init__(self, path: Path | str, line: int | None, field_name: str, problem: str):
        self.path = str(path)
        self.line = line
        self.field = field_name
        self.problem = problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {field_name}: {problem}" if field_name else f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    host: str = "127.0.0.1"
    client_port: int = 4222
    cluster_port: int | None = None
    monitor_host: str = "127.0.0.1"
    monitor_port: int = 8222
    public_host: str | None = None  # how monitors reach it, when `host` is a wildcard address

    @property
    def client_host(self) -> str:
        """The address clients dial (never a wildcard)."""
        if self.public_host:
            return self.public_host
        return "127.0.0.1" if is_wildcard(self.host) else self.host

    @property
    def client_url(self) -> str:
        return f"nats://{_url_host(self.client_host)}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        host = "127.0.0.1" if is_wildcard(self.monitor_host) else self.monitor_host
        return f"http://{_url_host(host)}:{self.monitor_port}"

    @property
    def route_url(self) -> str | None:
        if self.cluster_port is None:
            return None
        return f"nats-route://{_url_host(self.client_host)}:{self.cluster_port}"


@dataclass(frozen=True, slots=True)
class TLSSpec:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate signed by it (mutual TLS)
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class RouteAuthSpec:
    """Who may open a route: one user and password, as nats-server's `cluster.authorization` allows
    (no nkeys, no user lists there). The password is generated in <secrets_dir>/route.secret."""

    user: str = "route"
    password_file: Path | None = None  # operator-chosen password instead of the generated one


@dataclass(frozen=True, slots=True)
class RouteTLSSpec:
    """TLS on the cluster port: both ends present `cert` and must be signed by `ca`."""

    cert: Path
    key: Path
    ca: Path
    verify: bool = True
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 10_000
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_pending: int = 8 * 1024 * 1024
    ping_interval_s: int = 20
    max_pings_out: int = 3
    write_deadline_s: int = 10
    lame_duck_duration_s: int = 30  # nats-server refuses less than 30 s
    lame_duck_grace_period_s: int = 5
    # Connections the federation account (every monitor, enrolled and observer user) may hold;
    # None: derived (seed.render.federation_max_connections) so the admin always finds room.
    federation_max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class HistorySpec:
    """`history:` the seeds keep the federation's signed task events in a JetStream stream for
    `max_age_s` (at most `max_bytes`, oldest discarded) so an agent back from an outage catches up."""

    max_age_s: int = 86_400
    max_bytes: int = 1 << 30
    replicas: int = 1  # `auto`: 3 on a cluster of 3+ servers, else the number of servers


AUTH_MODES = ("static", "operator")
RESOLVER_TYPES = ("full",)


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """`auth:` static (users in the config) or operator (decentralized JWT: see seed/enroll.py)."""

    mode: str = "static"
    user_jwt_days: int = 90  # operator mode: validity of a user JWT `seedctl enroll approve` issues
    resolver: str = "full"  # operator mode: account resolver type of the seeds
    resolver_dir: Path | None = None  # where seeds keep account JWTs (default <state_dir>/<server>/jwt)

    @property
    def operator(self) -> bool:
        return self.mode == "operator"


@dataclass(frozen=True, slots=True)
class ConsoleSpec:
    host: str = "127.0.0.1"
    port: int = 8300
    sample_interval_s: int = 10
    history_days: int = 7
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback and `host`


@dataclass(frozen=True, slots=True)
class Spec:
    path: Path
    servers: tuple[ServerSpec, ...]
    users: tuple[UserSpec, ...]
    name: str = "tbfed"
    cluster_name: str = "tbfed-seeds"
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    tls: TLSSpec | None = None
    limits: Limits = field(default_factory=Limits)
    console: ConsoleSpec = field(default_factory=ConsoleSpec)
    secrets_dir: Path = Path("secrets")
    state_dir: Path = Path(".seedctl")
    rendered_dir: Path = Path("rendered")
    system_account: bool = True
    auth: AuthSpec = field(default_factory=AuthSpec)
    route_auth: RouteAuthSpec | None = field(default_factory=RouteAuthSpec)  # None: `cluster.auth: none`
    route_tls: RouteTLSSpec | None = None
    history: HistorySpec | None = None  # None: no JetStream at all (the config renders as before)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.servers]

    @property
    def clustered(self) -> bool:
        return any(s.cluster_port is not None for s in self.servers)

    def server(self, name: str) -> ServerSpec:
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(f"no server named {name!r} in {self.path} (servers: {', '.join(self.names)})")

    def user(self, name: str) -> UserSpec | None:
        return next((u for u in self.users if u.name == name), None)

    @property
    def client_urls(self) -> list[str]:
        scheme = "tls" if self.tls else "nats"
        return [s.client_url.replace("nats://", f"{scheme}://", 1) for s in self.servers]


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# ---- YAML with line numbers ----


class _Node:
    """A parsed YAML value with the line it came from."""

    __slots__ = ("value", "line")

    def __init__(self, value: Any, line: int):
        self.value = value
        self.line = line


MAX_SPEC_VALUES = 100_000  # what YAML aliases may expand to: a spec is small, a "billion laughs" is not


def _to_nodes(loader: yaml.SafeLoader, node: yaml.Node, path: Path, walk: dict | None = None) -> _Node:
    # Aliases (&anchor / *ref) are allowed, but a reference to an enclosing node (a cycle) and
    # an expansion past MAX_SPEC_VALUES are refused instead of recursing or spinning.
    walk = {"stack": set(), "count": 0} if walk is None else walk
    line = node.start_mark.line + 1
    walk["count"] += 1
    if walk["count"] > MAX_SPEC_VALUES:
        raise SpecError(path, line, "", f"YAML aliases expand to more than {MAX_SPEC_VALUES} values")
    if id(node) in walk["stack"]:
        raise SpecError(path, line, "", "a YAML alias refers to a node that contains it (a cycle)")
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        walk["stack"].add(id(node))
        try:
            return _container_to_nodes(loader, node, path, walk, line)
        finally:
            walk["stack"].discard(id(node))
    return _Node(loader.construct_object(node, deep=True), line)


def _container_to_nodes(loader: yaml.SafeLoader, node: yaml.Node, path: Path, walk: dict, line: int) -> _Node:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, _Node] = {}
        key_lines: dict[str, int] = {}
        for k, v in node.value:
            key = loader.construct_object(k, deep=True)
            if not isinstance(key, str):
                raise SpecError(path, k.start_mark.line + 1, str(key), "keys must be strings")
            if key in out:
                raise SpecError(
                    path, k.start_mark.line + 1, key, f"duplicate key (first at line {key_lines[key]})"
                )
            key_lines[key] = k.start_mark.line + 1
            out[key] = _to_nodes(loader, v, path, walk)
        return _Node(out, line)
    return _Node([_to_nodes(loader, v, path, walk) for v in node.value], line)


def _parse_yaml(path: Path) -> _Node:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(path, None, "", "spec file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, "", f"cannot read spec: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError(path, 1, "", "the spec is empty (see configs/seed.example.yaml)")
        return _to_nodes(loader, node, path)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(path, line, "", f"YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(path, None, "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()


# ---- field readers: each returns the typed value or raises SpecError naming the field ----


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, node: _Node | None, name: str, problem: str) -> SpecError:
        return SpecError(self.path, node.line if node else None, name, problem)

    def mapping(self, node: _Node, name: str, allowed: tuple[str, ...]) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node, name or "(top level)", f"expected a mapping, got {_kind(node.value)}")
        for key, child in node.value.items():
            if key not in allowed:
                raise self.fail(
                    child, _join(name, key), f"unknown key (allowed here: {', '.join(sorted(allowed))})"
                )
        return node.value

    def string(
        self, m: dict, key: str, name: str, default: Any = None, *, pattern: re.Pattern[str] | None = None,
        what: str = "",
    ) -> Any:
        node = m.get(key)
        if node is None or node.value is None:
            if default is _REQUIRED:
                raise self.fail(node, _join(name, key), "is required")
            return default
        if not isinstance(node.value, str) or not node.value:
            raise self.fail(node, _join(name, key), f"expected a non-empty string, got {_kind(node.value)}")
        if pattern is not None and not pattern.match(node.value):
            raise self.fail(node, _join(name, key), f"{node.value!r} is not {what}")
        return node.value

    def integer(self, m: dict, key: str, name: str, default: Any, lo: int, hi: int) -> Any:
        node = m.get(key)
        if node is None or node.value is None:
            if default is _REQUIRED:
                raise self.fail(node, _join(name, key), "is required")
            return default
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise self.fail(node, _join(name, key), f"expected an integer, got {_kind(node.value)}")
        if not lo <= node.value <= hi:
            raise self.fail(node, _join(name, key), f"{node.value} is out of range {lo}..{hi}")
        return node.value

    def boolean(self, m: dict, key: str, name: str, default: bool) -> bool:
        node = m.get(key)
        if node is None or node.value is None:
            return default
        if not isinstance(node.value, bool):
            raise self.fail(node, _join(name, key), f"expected true or false, got {_kind(node.value)}")
        return node.value

    @overload
    def file(self, m: dict, key: str, name: str, base: Path, *, required: Literal[True]) -> Path: ...
    @overload
    def file(self, m: dict, key: str, name: str, base: Path, *, required: bool) -> Path | None: ...
    def file(self, m: dict, key: str, name: str, base: Path, *, required: bool) -> Path | None:
        node = m.get(key)
        raw = self.string(m, key, name, _REQUIRED if required else None)
        if raw is None:
            return None
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else (base / p)
        if not p.is_file():
            raise self.fail(node, _join(name, key), f"file not found: {p}")
        return p.resolve()

    def directory(self, m: dict, key: str, name: str, base: Path, default: str) -> Path:
        raw = self.string(m, key, name, default)
        p = Path(raw).expanduser()
        return (p if p.is_absolute() else base / p).resolve()

    def string_list(self, m: dict, key: str, name: str) -> tuple[str, ...]:
        node = m.get(key)
        if node is None or node.value is None:
            return ()
        if not isinstance(node.value, list):
            raise self.fail(node, _join(name, key), f"expected a list of subjects, got {_kind(node.value)}")
        out = []
        for i, item in enumerate(node.value):
            if not isinstance(item.value, str) or not _SUBJECT_RE.match(item.value):
                raise self.fail(item, f"{_join(name, key)}[{i}]", "expected a NATS subject")
            out.append(item.value)
        return tuple(out)

    def host_list(self, m: dict, key: str, name: str) -> tuple[str, ...]:
        node = m.get(key)
        if node is None or node.value is None:
            return ()
        if not isinstance(node.value, list):
            raise self.fail(node, _join(name, key), f"expected a list of host names, got {_kind(node.value)}")
        out = []
        for i, item in enumerate(node.value):
            host = normalize_host(item.value) if isinstance(item.value, str) else None
            if host is None:
                raise self.fail(
                    item,
                    f"{_join(name, key)}[{i}]",
                    "expected a host name or IP address (no port, no scheme)",
                )
            out.append(host)
        return tuple(out)


_REQUIRED = object()


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}.get(
        type(value), type(value).__name__
    )


_TOP = (
    "name",
    "subject_prefix",
    "cluster",
    "servers",
    "tls",
    "limits",
    "users",
    "console",
    "secrets_dir",
    "state_dir",
    "rendered_dir",
    "system_account",
    "auth",
    "history",
)
_HISTORY = ("max_age", "max_bytes", "replicas")
_SERVER = ("name", "host", "client_port", "cluster_port", "monitor_host", "monitor_port", "public_host")
_TLS = ("cert", "key", "client_ca", "timeout_s")
_CLUSTER = ("name", "auth", "tls")
_ROUTE_AUTH = ("user", "password_file")
_ROUTE_TLS = ("cert", "key", "ca", "verify", "timeout_s")
_LIMITS = tuple(Limits.__dataclass_fields__)
_USER = ("name", "role", "auth", "publish", "subscribe", "password", "password_file")
_CONSOLE = tuple(ConsoleSpec.__dataclass_fields__)
_AUTH = tuple(AuthSpec.__dataclass_fields__)

_HOST_WHAT = "an IP address or host name"


def load_spec(path: str | Path) -> Spec:
    """Read and validate a deployment spec; raises `SpecError` naming file, line and field."""
    path = Path(path)
    root = _parse_yaml(path)
    return parse_spec(root, path)


def parse_spec(root: _Node, path: Path) -> Spec:
    r = _Reader(path)
    base = path.resolve().parent
    top = r.mapping(root, "", _TOP)

    name = r.string(top, "name", "", "tbfed", pattern=NAME_RE, what="a name of letters, digits, _ . -")
    prefix = r.string(top, "subject_prefix", "", DEFAULT_SUBJECT_PREFIX, pattern=_PREFIX_RE, what="a prefix")

    cluster_name = "tbfed-seeds"
    route_auth: RouteAuthSpec | None = RouteAuthSpec()
    route_tls = None
    if "cluster" in top:
        cm = r.mapping(top["cluster"], "cluster", _CLUSTER)
        cluster_name = r.string(cm, "name", "cluster", cluster_name, pattern=NAME_RE, what="a cluster name")
        route_auth = _route_auth(r, cm, base)
        route_tls = _route_tls(r, cm, base)

    servers = _servers(r, top)
    tls = None
    if "tls" in top and top["tls"].value is not None:
        tm = r.mapping(top["tls"], "tls", _TLS)
        timeout = tm.get("timeout_s")
        if timeout is not None and (
            isinstance(timeout.value, bool) or not isinstance(timeout.value, int | float)
        ):
            raise r.fail(timeout, "tls.timeout_s", "expected a number of seconds")
        tls = TLSSpec(
            cert=r.file(tm, "cert", "tls", base, required=True),
            key=r.file(tm, "key", "tls", base, required=True),
            client_ca=r.file(tm, "client_ca", "tls", base, required=False),
            timeout_s=float(timeout.value) if timeout is not None else 2.0,
        )

    limits = Limits()
    if "limits" in top and top["limits"].value is not None:
        lm = r.mapping(top["limits"], "limits", _LIMITS)
        d = Limits()
        limits = Limits(
            max_connections=r.integer(lm, "max_connections", "limits", d.max_connections, 1, 10_000_000),
            max_payload=r.integer(lm, "max_payload", "limits", d.max_payload, 1024, 64 * 1024 * 1024),
            max_pending=r.integer(lm, "max_pending", "limits", d.max_pending, 64 * 1024, 1 << 31),
            ping_interval_s=r.integer(lm, "ping_interval_s", "limits", d.ping_interval_s, 1, 3600),
            max_pings_out=r.integer(lm, "max_pings_out", "limits", d.max_pings_out, 1, 100),
            write_deadline_s=r.integer(lm, "write_deadline_s", "limits", d.write_deadline_s, 1, 600),
            lame_duck_duration_s=r.integer(
                lm, "lame_duck_duration_s", "limits", d.lame_duck_duration_s, 30, 3600
            ),
            lame_duck_grace_period_s=r.integer(
                lm, "lame_duck_grace_period_s", "limits", d.lame_duck_grace_period_s, 0, 3600
            ),
            federation_max_connections=r.integer(
                lm, "federation_max_connections", "limits", None, 1, 100_000_000
            ),
        )
        if limits.lame_duck_grace_period_s >= limits.lame_duck_duration_s:
            raise r.fail(
                lm.get("lame_duck_grace_period_s"),
                "limits.lame_duck_grace_period_s",
                "must be shorter than limits.lame_duck_duration_s",
            )

    users = _users(r, top, base)

    console = ConsoleSpec()
    if "console" in top and top["console"].value is not None:
        cm = r.mapping(top["console"], "console", _CONSOLE)
        console = ConsoleSpec(
            host=r.string(cm, "host", "console", "127.0.0.1", pattern=_HOST_RE, what=_HOST_WHAT),
            port=r.integer(cm, "port", "console", 8300, 1, 65535),
            sample_interval_s=r.integer(cm, "sample_interval_s", "console", 10, 1, 3600),
            history_days=r.integer(cm, "history_days", "console", 7, 1, 3650),
            allowed_hosts=r.host_list(cm, "allowed_hosts", "console"),
        )

    auth = AuthSpec()
    if "auth" in top and top["auth"].value is not None:
        am = r.mapping(top["auth"], "auth", _AUTH)
        mode = r.string(am, "mode", "auth", "static")
        if mode not in AUTH_MODES:
            raise r.fail(am["mode"], "auth.mode", f"{mode!r} is not one of {', '.join(AUTH_MODES)}")
        resolver = r.string(am, "resolver", "auth", "full")
        if resolver not in RESOLVER_TYPES:
            raise r.fail(am["resolver"], "auth.resolver", f"{resolver!r} is not one of {', '.join(RESOLVER_TYPES)}")
        auth = AuthSpec(
            mode=mode,
            user_jwt_days=r.integer(am, "user_jwt_days", "auth", 90, 1, 3650),
            resolver=resolver,
            resolver_dir=r.directory(am, "resolver_dir", "auth", base, "") if "resolver_dir" in am else None,
        )
        if auth.operator and not r.boolean(top, "system_account", "", True):
            raise r.fail(top["system_account"], "system_account", "operator mode needs the system account")
        if auth.operator and "users" in top and top["users"].value is not None:
            raise r.fail(
                top["users"], "users", "operator mode has no users in the config: nodes join with "
                "`seedctl enroll approve` (user JWTs); drop users: or use auth.mode static"
            )

    history = _history(r, top, servers, auth)

    return Spec(
        path=path.resolve(),
        servers=servers,
        users=() if auth.operator else users,  # operator mode: every user is a JWT (seed/enroll.py)
        name=name,
        cluster_name=cluster_name,
        subject_prefix=prefix,
        tls=tls,
        limits=limits,
        console=console,
        secrets_dir=r.directory(top, "secrets_dir", "", base, "secrets"),
        state_dir=r.directory(top, "state_dir", "", base, ".seedctl"),
        rendered_dir=r.directory(top, "rendered_dir", "", base, "rendered"),
        system_account=r.boolean(top, "system_account", "", True),
        auth=auth,
        route_auth=route_auth,
        route_tls=route_tls,
        history=history,
    )


_DURATION_RE = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_DURATION_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_SIZE_RE = re.compile(r"^(\d+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")
_SIZE_UNIT = {
    None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}  # fmt: skip


def _history(r: _Reader, top: dict, servers: tuple[ServerSpec, ...], auth: AuthSpec) -> HistorySpec | None:
    if "history" not in top or top["history"].value is None:
        return None
    node = top["history"]
    hm = r.mapping(node, "history", _HISTORY)
    if auth.operator:
        raise r.fail(
            node,
            "history",
            "is not available with auth.mode operator yet: the federation account's JWT grants no "
            "JetStream storage, so the seeds could not keep the stream; remove history: (agents then "
            "run without catch-up) or use auth.mode static",
        )
    d = HistorySpec()
    max_age = d.max_age_s
    if hm.get("max_age") is not None and hm["max_age"].value is not None:
        a = hm["max_age"]
        m = _DURATION_RE.match(str(a.value)) if isinstance(a.value, str) else None
        if not m:
            raise r.fail(a, "history.max_age", f"{a.value!r} is not a duration like 90s, 30m, 24h or 7d")
        max_age = int(m.group(1)) * _DURATION_UNIT[m.group(2)]
        if not 10 <= max_age <= 365 * 86_400:
            raise r.fail(a, "history.max_age", f"{a.value!r} is out of range 10s..365d")
    max_bytes = d.max_bytes
    if hm.get("max_bytes") is not None and hm["max_bytes"].value is not None:
        b = hm["max_bytes"]
        m = _SIZE_RE.match(str(b.value)) if isinstance(b.value, int | str) and not isinstance(b.value, bool) else None
        if not m:
            raise r.fail(b, "history.max_bytes", f"{b.value!r} is not a size like 512MiB or 1GiB")
        max_bytes = int(m.group(1)) * _SIZE_UNIT[m.group(2)]
        if not 1 << 20 <= max_bytes <= 1 << 50:
            raise r.fail(b, "history.max_bytes", f"{b.value!r} is out of range 1MiB..1PiB")
    n = len(servers)
    replicas = min(3, n)
    rep = hm.get("replicas")
    if rep is not None and rep.value is not None and rep.value != "auto":
        if isinstance(rep.value, bool) or not isinstance(rep.value, int) or not 1 <= rep.value <= 5:
            raise r.fail(rep, "history.replicas", f"expected auto or 1..5, got {rep.value!r}")
        if rep.value > n:
            raise r.fail(rep, "history.replicas", f"{rep.value} replicas need as many servers (the spec has {n})")
        replicas = rep.value
    if n > 1 and any(s.cluster_port is None for s in servers):
        raise r.fail(node, "history", "every server needs a cluster_port: JetStream replicates over the routes")
    return HistorySpec(max_age_s=max_age, max_bytes=max_bytes, replicas=replicas)


def _seconds(r: _Reader, m: dict, name: str, default: float) -> float:
    node = m.get("timeout_s")
    if node is None or node.value is None:
        return default
    if isinstance(node.value, bool) or not isinstance(node.value, int | float) or node.value <= 0:
        raise r.fail(node, f"{name}.timeout_s", "expected a positive number of seconds")
    return float(node.value)


def _route_auth(r: _Reader, cm: dict, base: Path) -> RouteAuthSpec | None:
    node = cm.get("auth")
    if node is None or node.value is None:
        return RouteAuthSpec()
    if node.value == "none":  # explicit opt-out: any server that reaches the cluster port joins
        return None
    if not isinstance(node.value, dict):
        raise r.fail(node, "cluster.auth", "expected a mapping {user, password_file} or the word none")
    am = r.mapping(node, "cluster.auth", _ROUTE_AUTH)
    user = r.string(am, "user", "cluster.auth", "route", pattern=NAME_RE, what="a user name")
    return RouteAuthSpec(
        user=user, password_file=r.file(am, "password_file", "cluster.auth", base, required=False)
    )


def _route_tls(r: _Reader, cm: dict, base: Path) -> RouteTLSSpec | None:
    node = cm.get("tls")
    if node is None or node.value is None:
        return None
    tm = r.mapping(node, "cluster.tls", _ROUTE_TLS)
    verify = r.boolean(tm, "verify", "cluster.tls", True)
    if not verify:
        raise r.fail(
            tm["verify"],
            "cluster.tls.verify",
            "must be true: a route must prove it holds a certificate of the CA",
        )
    return RouteTLSSpec(
        cert=r.file(tm, "cert", "cluster.tls", base, required=True),
        key=r.file(tm, "key", "cluster.tls", base, required=True),
        ca=r.file(tm, "ca", "cluster.tls", base, required=True),
        verify=verify,
        timeout_s=_seconds(r, tm, "cluster.tls", 2.0),
    )


def _servers(r: _Reader, top: dict) -> tuple[ServerSpec, ...]:
    node = top.get("servers")
    if node is None or not isinstance(node.value, list) or not node.value:
        raise r.fail(node, "servers", "a list of at least one server is required")
    servers: list[ServerSpec] = []
    names: dict[str, int] = {}
    bound: list[tuple[str, str, int, str]] = []  # (machine, address, port, who)
    for i, item in enumerate(node.value):
        where = f"servers[{i}]"
        m = r.mapping(item, where, _SERVER)
        name = r.string(m, "name", where, _REQUIRED, pattern=NAME_RE, what="a name of letters, digits, _ . -")
        if name in names:
            raise r.fail(
                m["name"], f"{where}.name", f"duplicate server name {name!r} (first at line {names[name]})"
            )
        names[name] = m["name"].line
        s = ServerSpec(
            name=name,
            host=r.string(m, "host", where, "127.0.0.1", pattern=_HOST_RE, what=_HOST_WHAT),
            client_port=r.integer(m, "client_port", where, 4222, 1, 65535),
            cluster_port=r.integer(m, "cluster_port", where, None, 1, 65535),
            monitor_host=r.string(m, "monitor_host", where, "127.0.0.1", pattern=_HOST_RE, what=_HOST_WHAT),
            monitor_port=r.integer(m, "monitor_port", where, 8222, 1, 65535),
            public_host=r.string(m, "public_host", where, None, pattern=_HOST_RE, what=_HOST_WHAT),
        )
        machine = machine_of(s)
        for key, host, port in (
            ("client_port", s.host, s.client_port),
            ("cluster_port", s.host, s.cluster_port),
            ("monitor_port", s.monitor_host, s.monitor_port),
        ):
            if port is None:
                continue
            for o_machine, o_host, o_port, who in bound:
                if o_port == port and o_machine == machine and _overlap(host, o_host):
                    raise r.fail(
                        m.get(key, item), f"{where}.{key}", f"port {port} on {host} is already used by {who}"
                    )
            bound.append((machine, host, port, f"{name}.{key}"))
        servers.append(s)
    if len(servers) > 1 and any(s.cluster_port is None for s in servers):
        bad = next(i for i, s in enumerate(servers) if s.cluster_port is None)
        raise r.fail(
            node.value[bad], f"servers[{bad}].cluster_port", "is required when the spec has several servers"
        )
    return tuple(servers)


def machine_of(server: ServerSpec) -> str:
    """Which machine a server runs on, as far as the spec can tell: the first specific,
    non-loopback address among public_host and host; "local" for servers bound to loopback or
    a wildcard without a public_host. Ports only clash between servers on one machine, so
    three seeds on three hosts may each keep monitoring on 127.0.0.1:8222."""
    for h in (server.public_host, server.host):
        if h and not is_wildcard(h) and not is_loopback(h):
            return h.lower()
    return "local"


def _canonical(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host.lower()


def _overlap(a: str, b: str) -> bool:
    """Two bind addresses of one machine collide (a wildcard bind overlaps every address)."""
    return is_wildcard(a) or is_wildcard(b) or _canonical(a) == _canonical(b)


def _users(r: _Reader, top: dict, base: Path) -> tuple[UserSpec, ...]:
    node = top.get("users")
    if node is None or node.value is None:
        # The sensible default: an admin in the system account, the shared monitor user, an observer.
        return (UserSpec("admin", "admin"), UserSpec("monitor", "monitor"), UserSpec("observer", "observer"))
    if not isinstance(node.value, list):
        raise r.fail(node, "users", f"expected a list of users, got {_kind(node.value)}")
    users: list[UserSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.value):
        where = f"users[{i}]"
        m = r.mapping(item, where, _USER)
        name = r.string(
            m, "name", where, _REQUIRED, pattern=NAME_RE, what="a user name of letters, digits, _ . -"
        )
        if name in seen:
            raise r.fail(m["name"], f"{where}.name", f"duplicate user {name!r} (first at line {seen[name]})")
        seen[name] = m["name"].line
        role = r.string(m, "role", where, _REQUIRED)
        if role not in ROLES:
            raise r.fail(m["role"], f"{where}.role", f"{role!r} is not one of {', '.join(ROLES)}")
        if role == "enrolled" and not NODE_ID_RE.match(name):
            raise r.fail(
                m["name"], f"{where}.name", f"an enrolled user is named by its nodeId; {name!r} is not one"
            )
        publish = r.string_list(m, "publish", where)
        subscribe = r.string_list(m, "subscribe", where)
        if role != "custom" and (publish or subscribe):
            bad = m.get("publish") or m.get("subscribe")
            raise r.fail(bad, f"{where}.publish", f"permissions are fixed for role {role}; use role: custom")
        if "password" in m and "password_file" in m:
            raise r.fail(m["password"], f"{where}.password", "give password or password_file, not both")
        password = r.string(m, "password", where, None)
        auth = r.string(m, "auth", where, "password")
        if auth not in AUTH_KINDS:
            raise r.fail(m["auth"], f"{where}.auth", f"{auth!r} is not one of {', '.join(AUTH_KINDS)}")
        if auth == "nkey" and ("password" in m or "password_file" in m):
            bad = m.get("password") or m.get("password_file")
            raise r.fail(
                bad, f"{where}.auth", "an nkey user has no password (its seed is <secrets_dir>/<name>.nk)"
            )
        users.append(
            UserSpec(
                name=name,
                role=role,
                publish=publish,
                subscribe=subscribe,
                password=password,
                password_file=r.file(m, "password_file", where, base, required=False),
                auth=auth,
            )
        )
    admins = [u for u in users if u.role == "admin"]
    if len(admins) > 1:
        raise r.fail(node, "users", "at most one admin (system account) user")
    return tuple(users)
