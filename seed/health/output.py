"""`seedctl health` output: a Nagios-style first line, then a table; or JSON."""

from __future__ import annotations

import json

from monitor_agent.timestamps import rfc3339

from .checks import CHECK_NAMES, HISTORY_CHECK_NAMES, SKIPPED_UNREACHABLE
from .runner import ServerReport
from .status import CheckResult, Status, worst

_ORDER = {name: i for i, name in enumerate(CHECK_NAMES + HISTORY_CHECK_NAMES)}


def overall(reports: list[ServerReport]) -> Status:
    return worst(r.status for r in reports)


def _problems(reports: list[ServerReport]) -> list[tuple[str, CheckResult]]:
    """(server, check) that are not OK, worst first; checks skipped for an unreachable server left out."""
    bad = [(rep.name, res) for rep in reports for res in rep.failing if res.reason != SKIPPED_UNREACHABLE]
    bad.sort(key=lambda item: (-item[1].status.severity, _ORDER.get(item[1].name, 99)))
    return bad


def summary_line(reports: list[ServerReport]) -> str:
    """Nagios shows the first line: overall status, then what is wrong, worst and most basic first."""
    if not reports:
        return "SEEDS UNKNOWN - no server selected"
    status = overall(reports)
    bad = _problems(reports)
    if not bad:
        return f"SEEDS OK - {len(reports)} server{'s' if len(reports) != 1 else ''} healthy"
    shown = "; ".join(f"{name} {res.name}: {res.reason}" for name, res in bad[:3])
    more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    return f"SEEDS {status.name} - {shown}{more}"


def perfdata(reports: list[ServerReport]) -> str:
    """Nagios performance data (`label=value[unit];warn;crit;min;max`) for graphing."""
    parts = []
    for rep in reports:
        f, n = rep.figures, rep.name
        if f.get("connections") is not None:
            parts.append(f"{n}_connections={f['connections']};;;0;{f.get('max_connections') or ''}")
        if f.get("routes_live") is not None:
            parts.append(f"{n}_routes={f['routes_live']};;;0;{f.get('routes_expected', '')}")
        if f.get("slow_consumers") is not None:
            parts.append(f"{n}_slow_consumers={f['slow_consumers']}c")
        if f.get("mem_bytes") is not None:
            parts.append(f"{n}_mem={f['mem_bytes']}B")
        if f.get("up"):
            parts.append(f"{n}_poll={f.get('poll_ms', 0)}ms")
        if f.get("history_bytes") is not None:
            parts.append(f"{n}_history={f['history_bytes']}B;;;0;{f.get('history_max_bytes') or ''}")
    return " ".join(parts)


def format_text(reports: list[ServerReport], verbose: bool = True) -> str:
    """The summary line (with perfdata), then per server its failing checks first and (verbose) the rest."""
    width = max([6, *(len(r.name) for r in reports)])
    cw = 18
    first = summary_line(reports)
    perf = perfdata(reports)
    if perf:
        first = f"{first.replace('|', '/')} | {perf}"  # a '|' in a reason would start perfdata early
    lines = [first, "", f"{'SERVER':<{width}}  {'STATUS':<8}  {'CHECK':<{cw}}  REASON"]
    for rep in reports:
        skipped = [r for r in rep.results if r.reason == SKIPPED_UNREACHABLE]
        rows = [r for r in rep.failing if r.reason != SKIPPED_UNREACHABLE]
        if verbose:
            rows += [r for r in rep.results if r.status is Status.OK]
        if skipped:
            rows.append(
                CheckResult("(others)", Status.UNKNOWN, f"{len(skipped)} checks skipped: server unreachable")
            )
        if not rows:
            lines.append(f"{rep.name:<{width}}  {'OK':<8}  {'(all)':<{cw}}  {len(rep.results)} checks OK")
            continue
        for i, res in enumerate(rows):
            name = rep.name if i == 0 else ""
            lines.append(f"{name:<{width}}  {res.status.name:<8}  {res.name:<{cw}}  {res.reason}")
    return "\n".join(lines)


def format_json(reports: list[ServerReport]) -> str:
    status = overall(reports)
    return json.dumps(
        {
            "status": status.name,
            "exit_code": int(status),
            "checked_at": rfc3339(),
            "summary": summary_line(reports),
            "servers": [r.to_dict() for r in reports],
        },
        indent=2,
    )
