"""Live look-ups the server page makes on demand: top connections (paged /connz) and /subsz."""

from __future__ import annotations

import asyncio

from seed.health import EndpointError, MonitorClient, new_http_client
from seed.health.runner import run_sync

PAGE_SIZE = 10


async def _fetch(url: str, page: int, timeout: float) -> dict:
    async with new_http_client(4) as http:
        client = MonitorClient(http, url, timeout)
        offset = page * PAGE_SIZE

        async def safe(coro):
            try:
                return await coro
            except EndpointError as exc:
                return {"error": exc.message}

        by_pending, by_rtt, subsz = await asyncio.gather(
            safe(client.connz(sort="pending", limit=PAGE_SIZE, offset=offset)),
            safe(client.connz(sort="rtt", limit=PAGE_SIZE, offset=offset)),
            safe(client.subsz()),
        )
    return {"by_pending": _conns(by_pending), "by_rtt": _conns(by_rtt), "subs": _subs(subsz), "page": page}


def _conns(connz: dict) -> dict:
    """Only what an operator needs to spot a stuck client; no IP addresses or ports on the page."""
    if "error" in connz:
        return {"error": connz["error"], "rows": [], "total": 0}
    rows = []
    for c in connz.get("connections") or ():
        if not isinstance(c, dict):
            continue
        rows.append(
            {
                "cid": c.get("cid"),
                "name": c.get("name") or "",
                "lang": f"{c.get('lang', '')} {c.get('version', '')}".strip(),
                "pending_bytes": c.get("pending_bytes", 0),
                "rtt": c.get("rtt", ""),
                "in_msgs": c.get("in_msgs", 0),
                "out_msgs": c.get("out_msgs", 0),
                "subscriptions": c.get("subscriptions", 0),
                "uptime": c.get("uptime", ""),
            }
        )
    return {"rows": rows, "total": connz.get("total", len(rows)), "offset": connz.get("offset", 0)}


def _subs(subsz: dict) -> dict:
    if "error" in subsz:
        return {"error": subsz["error"]}
    keys = ("num_subscriptions", "num_cache", "num_inserts", "num_removes", "num_matches", "cache_hit_rate",
            "max_fanout", "avg_fanout")  # fmt: skip
    return {k: subsz.get(k) for k in keys}


def lookup(url: str, page: int = 0, timeout: float = 1.5) -> dict:
    """Blocking helper for a request thread."""
    return run_sync(lambda: _fetch(url, page, timeout))
