"""Reading compose files the way `docker compose` does, without Docker: interpolation and the
Compose Specification schema (vendored in tests/fixtures/compose-spec/)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "tests" / "fixtures" / "compose-spec" / "compose_spec.json"
MONITOR_COMPOSE = ROOT / "configs" / "docker-compose.monitor.yml"
SEED_COMPOSE = ROOT / "configs" / "docker-compose.seed.yml"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, $VAR; "$$" is a literal "$".
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """One string with compose's variable substitution."""

    def repl(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        present = name in env
        nonempty = present and env[name] != ""
        if op in (":-", "-"):
            use_default = not nonempty if op == ":-" else not present
            return arg if use_default else env[name]
        if op in (":?", "?"):
            ok = nonempty if op == ":?" else present
            if not ok:
                raise InterpolationError(f"{name}: {arg or 'required'}")
            return env[name]
        return env.get(name, "")

    return _VAR.sub(repl, value)


def variables(value: Any) -> set[str]:
    """Every variable name referenced anywhere in a loaded compose document."""
    found: set[str] = set()
    if isinstance(value, str):
        for m in _VAR.finditer(value):
            name = m.group("braced") or m.group("named")
            if name:
                found.add(name)
    elif isinstance(value, dict):
        for v in value.values():
            found |= variables(v)
    elif isinstance(value, list):
        for v in value:
            found |= variables(v)
    return found


def resolve(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    return value


def load_raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose document after interpolation (what compose validates and runs)."""
    return resolve(load_raw(path), env or {})


# ---- the schema's custom formats, as compose defines them ----

_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_PORTS = re.compile(
    r"^((?P<ip>[0-9.]+|\[[0-9a-fA-F:]+\]):)?((?P<published>\d+(-\d+)?)?:)?(?P<target>\d+(-\d+)?)(/(tcp|udp|sctp))?$"
)
_EXPOSE = re.compile(r"^\d+(-\d+)?(/(tcp|udp|sctp))?$")


def format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("duration")(lambda v: not isinstance(v, str) or bool(_DURATION.match(v)))
    checker.checks("ports")(lambda v: isinstance(v, int) or bool(_PORTS.match(str(v))))
    checker.checks("expose")(lambda v: isinstance(v, int) or bool(_EXPOSE.match(str(v))))
    return checker


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=format_checker())


def errors(doc: dict[str, Any]) -> list[str]:
    """Schema violations, each as `path: message` (empty when valid)."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:` as a dict (list or mapping form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, val = str(item).partition("=")
            out[key] = val
        return out
    return {k: "" if v is None else str(v) for k, v in env.items()}
