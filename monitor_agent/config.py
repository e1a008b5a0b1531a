"""The agent's one configuration loader: environment (PROTOCOL.md §7), then persisted settings.

Precedence, highest first:
  1. settings changed through the API (`POST /api/federation/settings`), persisted in
     `$DATA_DIR/settings.json` — only the four switches `enabled`, `broadcastTasks`,
     `broadcastStats`, `receiveEnabled`;
  2. environment variables;
  3. the defaults below (the seed documentation's, exactly).

A malformed value raises `ConfigError`, whose message is the one line printed at start-up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .files import write_private
from .protocol import NODE_ID_RE, REGIONS
from .web.hosts import normalize_host

SETTINGS_FILE = "settings.json"
DB_FILE = "truebit-monitor.db"

# API name of each live switch -> Config attribute.
SWITCHES = {
    "enabled": "enable_federation",
    "broadcastTasks": "broadcast_tasks",
    "broadcastStats": "broadcast_stats",
    "receiveEnabled": "receive_enabled",
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of the agent, typed and validated."""

    enable_federation: bool = False
    seed_urls: tuple[str, ...] = ("nats://federation.truebit.monitor:4222",)
    node_id: str | None = None  # None: derived from the node key
    broadcast_tasks: bool = True
    broadcast_stats: bool = True
    receive_enabled: bool = True
    catch_up: bool = True  # read missed task events from the seeds' history stream on (re)connect
    task_retention_days: int = 7
    max_db_mb: int = 1024  # FEDERATION_MAX_DB_MB: size cap of the database (PROTOCOL.md §7)
    reconnect_timeout_ms: int = 5000
    broadcast_interval_ms: int = 1000
    tls_enabled: bool = False
    credentials_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None  # client certificate for mutual TLS (with tls_key)
    tls_key: Path | None = None
    region: str = "UNKNOWN"
    subject_prefix: str = "tbfed"
    require_signatures: bool = True
    privacy: str = "standard"  # standard | strict
    debug: bool = False
    monitor_host: str = "127.0.0.1"
    monitor_port: int = 8090
    api_token: str | None = None
    ws_allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback and MONITOR_HOST
    data_dir: Path = field(default_factory=lambda: Path("data"))
    node_log_source: str = "docker"  # docker | files | none
    node_container: str = "runner-node"
    node_log_dir: Path | None = None
    docker_host: str = "unix:///var/run/docker.sock"
    log_level: str = "INFO"

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def seed_url_display(self) -> str:
        """The seed URL list with any password removed (safe to show and log)."""
        return ",".join(redact_url(u) for u in self.seed_urls)


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not even a URL: never echo what may hold a password
        return "<unparseable URL>" if "@" in url else url
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    user = parts.username or ""
    return f"{parts.scheme}://{user}:***@{host}{parts.path}"


# ---- parsers: each returns the typed value or raises ConfigError naming the variable ----


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(name, raw, "true or false")


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise ConfigError(name, raw, f"an integer from {lo} to {hi}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, raw, f"an integer from {lo} to {hi}")
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in allowed:
        raise ConfigError(name, raw, "one of " + ", ".join(allowed))
    return value


def _seed_urls(name: str, raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    if not urls:
        raise ConfigError(name, raw, "one or more nats:// or tls:// URLs separated by commas")
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ConfigError(name, redact_url(url), "a URL like nats://host:4222") from None
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigError(name, redact_url(url), "a URL like nats://host:4222 or tls://host:4222")
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(name, redact_url(url), "a port from 1 to 65535")
    return urls


def _file(name: str, raw: str) -> Path:
    path = Path(raw.strip()).expanduser()
    if not path.is_file():
        raise ConfigError(name, raw, "the path of an existing, readable file")
    return path


def credentials_kind(text: str) -> str | None:
    """What a FEDERATION_CREDENTIALS file holds: "creds", "nkey", "password", "jwt" (a user JWT
    without seed: the node key signs), "nodekey" (the node's own public NKEY: static enrollment),
    or None (unusable)."""
    if "BEGIN NATS USER JWT" in text and "NKEY SEED" in text:
        return "creds"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        return None
    first = lines[0]
    if "BEGIN NATS USER JWT" in text or (first.startswith("eyJ") and first.count(".") == 2):
        return "jwt" if len(lines) <= 3 and any(ln.startswith("eyJ") for ln in lines) else None
    if first.startswith("U") and len(first) == 56 and ":" not in first:
        return "nodekey"
    if first.startswith("SU") and ":" not in first:
        return "nkey" if nkey_seed_ok(first) else None
    user, sep, _password = first.partition(":")
    return "password" if sep and user else None


def nkey_seed_ok(seed: str) -> bool:
    """Whether `seed` is a well-formed NKEY user seed (prefix, length, checksum)."""
    import base64

    import nkeys  # only agents with nkey credentials pay for the import

    if not seed.startswith("SU") or len(seed) != 58:
        return False
    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
        return nkeys.crc16_checksum(raw[:-2]) == raw[-2:]
    except ValueError:
        return False


def _credentials(name: str, raw: str) -> Path:
    path = _file(name, raw)
    try:
        kind = credentials_kind(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        kind = None
    if kind is None:  # the value named is the path, never the file's content (a secret)
        raise ConfigError(
            name,
            raw,
            "a file holding user:password, a NATS .creds file, an NKEY user seed (SU...), or what "
            "`seedctl enroll approve` wrote (a user JWT, or the node's public key)",
        )
    return path


def _node_id(name: str, raw: str) -> str:
    value = raw.strip()
    if not NODE_ID_RE.match(value):
        raise ConfigError(name, raw, "FED_005: 3-63 chars matching ^[a-z0-9][a-z0-9-]{2,62}$")
    return value


def _host(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or not re.match(r"^[A-Za-z0-9.:\[\]-]+$", value):
        raise ConfigError(name, raw, "an IP address or host name to bind, like 127.0.0.1 or 0.0.0.0")
    return value


def _origins(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in items:
        if not re.match(r"^https?://[^/\s]+$", origin):
            raise ConfigError(name, raw, "comma-separated origins like http://host:8090")
    return items


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    items = []
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        host = normalize_host(item)
        if host is None:
            raise ConfigError(
                name,
                raw,
                "comma-separated host names or IP addresses, without port or scheme, "
                "like monitor.lan,192.168.1.20",
            )
        items.append(host)
    return tuple(items)


def _docker_host(name: str, raw: str) -> str:
    value = raw.strip()
    if not (value.startswith("unix://") and len(value) > len("unix://")):
        raise ConfigError(name, raw, "unix:///path/to/docker.sock (only the local socket is supported)")
    return value


def _container(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$", value):
        raise ConfigError(name, raw, "a container name or id")
    return value


def _subject_prefix(name: str, raw: str) -> str:
    value = raw.strip()
    if not _PREFIX_RE.match(value):
        raise ConfigError(name, raw, "1-32 chars of letters, digits, _ or -")
    return value


def _token(name: str, raw: str) -> str:
    value = raw.strip()
    if len(value) < 16:
        raise ConfigError(name, "<hidden>", "a token of at least 16 characters")
    return value


# variable -> (Config attribute, parser)
_ENV = {
    "ENABLE_FEDERATION": ("enable_federation", _bool),
    "FEDERATION_SEED_URL": ("seed_urls", _seed_urls),
    "FEDERATION_NODE_ID": ("node_id", _node_id),
    "FEDERATION_BROADCAST_TASKS": ("broadcast_tasks", _bool),
    "FEDERATION_BROADCAST_STATS": ("broadcast_stats", _bool),
    "FEDERATION_RECEIVE_ENABLED": ("receive_enabled", _bool),
    "FEDERATION_CATCH_UP": ("catch_up", _bool),
    "FEDERATION_TASK_RETENTION_DAYS": ("task_retention_days", lambda n, r: _int(n, r, 1, 3650)),
    "FEDERATION_MAX_DB_MB": ("max_db_mb", lambda n, r: _int(n, r, 1, 10_000_000)),
    "FEDERATION_RECONNECT_TIMEOUT": ("reconnect_timeout_ms", lambda n, r: _int(n, r, 100, 600_000)),
    "FEDERATION_BROADCAST_INTERVAL_MS": (
        "broadcast_interval_ms",
        lambda n, r: _int(n, r, 100, 3_600_000),
    ),
    "FEDERATION_TLS_ENABLED": ("tls_enabled", _bool),
    "FEDERATION_CREDENTIALS": ("credentials_file", _credentials),
    "FEDERATION_TLS_CA": ("tls_ca", _file),
    "FEDERATION_TLS_CERT": ("tls_cert", _file),
    "FEDERATION_TLS_KEY": ("tls_key", _file),
    "FEDERATION_REGION": ("region", lambda n, r: _choice(n, r, REGIONS, upper=True)),
    "FEDERATION_SUBJECT_PREFIX": ("subject_prefix", _subject_prefix),
    "FEDERATION_REQUIRE_SIGNATURES": ("require_signatures", _bool),
    "FEDERATION_PRIVACY": ("privacy", lambda n, r: _choice(n, r, ("standard", "strict"))),
    "FEDERATION_DEBUG": ("debug", _bool),
    "MONITOR_HOST": ("monitor_host", _host),
    "MONITOR_PORT": ("monitor_port", lambda n, r: _int(n, r, 1, 65535)),
    "MONITOR_API_TOKEN": ("api_token", _token),
    "MONITOR_WS_ORIGINS": ("ws_allowed_origins", _origins),
    "MONITOR_ALLOWED_HOSTS": ("allowed_hosts", _hosts),
    "DATA_DIR": ("data_dir", lambda n, r: Path(r.strip()).expanduser()),
    "NODE_LOG_SOURCE": ("node_log_source", lambda n, r: _choice(n, r, ("docker", "files", "none"))),
    "NODE_CONTAINER": ("node_container", _container),
    "NODE_LOG_DIR": ("node_log_dir", lambda n, r: Path(r.strip()).expanduser()),
    "DOCKER_HOST": ("docker_host", _docker_host),
    "LOG_LEVEL": ("log_level", lambda n, r: _choice(n, r, ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True)),
}

ENV_VARIABLES = tuple(_ENV)
"""Every environment variable the agent reads (compose files may set no other)."""


def load_config(environ: Mapping[str, str] | None = None, *, apply_settings: bool = True) -> Config:
    """Build the Config from the environment, then the persisted API settings."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}  # Config field -> its parsed value (each parser checks its own)
    for var, (attr, parse) in _ENV.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        values[attr] = parse(var, raw)
    config = Config(**values)
    if (config.tls_cert is None) != (config.tls_key is None):
        missing = "FEDERATION_TLS_KEY" if config.tls_key is None else "FEDERATION_TLS_CERT"
        raise ConfigError(missing, "", "set together with the other (a client certificate and its key)")
    if config.node_log_source == "files" and config.node_log_dir is None:
        raise ConfigError("NODE_LOG_DIR", "", "a directory when NODE_LOG_SOURCE=files")
    if apply_settings:
        switched: dict[str, Any] = {SWITCHES[k]: v for k, v in read_settings(config.data_dir).items()}
        config = replace(config, **switched)
    return config


def read_settings(data_dir: Path) -> dict[str, bool]:
    """The persisted switch overrides; a damaged file is ignored (and left for the operator)."""
    path = Path(data_dir) / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in SWITCHES and isinstance(v, bool)}


def save_settings(data_dir: Path, changes: Mapping[str, bool]) -> dict[str, bool]:
    """Merge `changes` into the persisted switches (atomic write); returns the merged overrides."""
    unknown = set(changes) - set(SWITCHES)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    merged = read_settings(data_dir) | dict(changes)
    # 0600 like everything else in DATA_DIR: the switches say whether this operator shares.
    write_private(Path(data_dir) / SETTINGS_FILE, json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return merged


def config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Config))


# Variables holding a path: in an env file, a relative value is relative to the file itself,
# so a hand-off folder from `seedctl users credentials` works wherever it is unpacked.
PATH_VARIABLES = (
    "FEDERATION_CREDENTIALS",
    "FEDERATION_TLS_CA",
    "FEDERATION_TLS_CERT",
    "FEDERATION_TLS_KEY",
    "DATA_DIR",
    "NODE_LOG_DIR",
)


def read_env_file(path: str | Path) -> dict[str, str]:
    """`KEY=VALUE` lines of an env file (`#` comments, optional quotes, optional `export `).

    Only the agent's own variables are accepted (a typo is refused, naming file and line);
    relative paths in PATH_VARIABLES are resolved against the file's directory.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "--env-file", str(path), f"a readable env file ({getattr(exc, 'strerror', exc)})"
        ) from None
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in _ENV:
            raise ConfigError(
                f"{path}:{number}",
                key or line,
                "VARIABLE=value with one of the agent's variables (PROTOCOL.md §7)",
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key in PATH_VARIABLES and value and not Path(value).expanduser().is_absolute():
            value = str((path.parent / value).resolve())
        out[key] = value
    return out
