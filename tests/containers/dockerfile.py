"""Reading the Dockerfile and .dockerignore without Docker: instructions, stages, ignore rules."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    op: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        text = self.args
        if self.op == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(.*)$", text, re.S)
            text = m.group(1) if m else ""
        text = text.strip()
        if not text.startswith("["):
            return None
        return json.loads(text)


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Every instruction with continuation lines joined (comments and blank lines dropped)."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        text = " ".join(p for p in buf if p)
        op, _, args = text.partition(" ")
        out.append(Instruction(op.upper(), args.strip(), start))
        buf = []
    return out


def final_stage(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions of the last stage (the image that ships)."""
    items = instructions(path)
    last_from = max(i for i, ins in enumerate(items) if ins.op == "FROM")
    return items[last_from:]


def env(stage: list[Instruction]) -> dict[str, str]:
    """ENV settings of a stage (key=value form, several per instruction)."""
    out: dict[str, str] = {}
    for ins in stage:
        if ins.op == "ENV":
            for token in shlex.split(ins.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {ins.line}: use ENV key=value"
                out[key] = value
    return out


def quoted_requirements(ins: Instruction) -> list[str]:
    return re.findall(r'"([A-Za-z0-9_.\-\[\]]+[<>=!~][^"]*)"', ins.args)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln.strip("/") for ln in lines if ln and not ln.startswith("#")]


def is_ignored(relpath: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `relpath` out (a path is out when it or a parent matches)."""
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = _pattern_regex(pattern.lstrip("!"))
        if any(rx.match(p) for p in prefixes):
            ignored = not negate
    return ignored
