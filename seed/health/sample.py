"""One observation of one seed: the raw endpoint answers the checks judge, gathered concurrently."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from monitor_agent.protocol import subject_for

from ..monitoring import EndpointError, Healthz, MonitorClient

# A subject every federation receiver's `tbfed.v1.>` subscription matches: /subsz?test= lists them.
FEDERATION_PROBE_SUBJECT = subject_for("task", "node-0000000000")


@dataclass(slots=True)
class Sample:
    """What one server's monitoring endpoints said at `at` (unix seconds); failures kept as errors."""

    name: str
    url: str
    at: float
    varz: dict | None = None
    varz_error: EndpointError | None = None
    healthz: Healthz | None = None
    healthz_error: EndpointError | None = None
    routez: dict | None = None
    routez_error: EndpointError | None = None
    fed_subsz: dict | None = None
    fed_error: EndpointError | None = None
    jsz: dict | None = None  # /jsz of the federation account (spec `history:` only, else not asked)
    jsz_error: EndpointError | None = None
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reachable(self) -> bool:
        return not (self.varz_error and self.varz_error.transport)


def counters(sample: Sample) -> dict | None:
    """The few figures remembered between samples (rates, 'rising since last time', restarts)."""
    v = sample.varz
    if not v:
        return None
    out = {"at": sample.at}
    for key in ("server_id", "start", "in_msgs", "out_msgs", "slow_consumers", "stale_connections",
                "stalled_clients", "version"):  # fmt: skip
        if key in v:
            out[key] = v[key]
    delivered = federation_delivered(sample)
    if delivered is not None:
        out["fed_delivered"] = delivered
    return out


def federation_subscriptions(sample: Sample) -> list[dict] | None:
    if sample.fed_subsz is None:
        return None
    subs = sample.fed_subsz.get("subscriptions_list")
    return subs if isinstance(subs, list) else []


def federation_delivered(sample: Sample) -> int | None:
    """Messages delivered so far to the federation subscriptions on this server."""
    subs = federation_subscriptions(sample)
    if subs is None:
        return None
    return sum(int(s.get("msgs", 0) or 0) for s in subs if isinstance(s, dict))


async def _catch(coro):
    try:
        return await coro, None
    except EndpointError as exc:
        return None, exc


async def _nothing():
    return None


async def collect(
    client: MonitorClient,
    name: str,
    *,
    subject: str = FEDERATION_PROBE_SUBJECT,
    jsz_account: str | None = None,
) -> Sample:
    """Ask one server's /varz, /healthz, /routez and /subsz at once and keep every answer or error;
    with `jsz_account` (spec `history:`) also /jsz of that account's streams."""
    started = time.perf_counter()
    at = time.time()
    jsz = client.jsz(account=jsz_account) if jsz_account else _nothing()
    (varz, varz_err), (hz, hz_err), (routez, r_err), (subsz, s_err), (js, js_err) = await asyncio.gather(
        _catch(client.varz()),
        _catch(client.healthz()),
        _catch(client.routez()),
        _catch(client.subsz(test=subject)),
        _catch(jsz),
    )
    if varz is not None and "server_id" not in varz:
        varz, varz_err = (
            None,
            EndpointError("bad_shape", "/varz is JSON but not a nats-server's (no server_id)"),
        )
    return Sample(
        name=name,
        url=client.base_url,
        at=at,
        varz=varz,
        varz_error=varz_err,
        healthz=hz,
        healthz_error=hz_err,
        routez=routez,
        routez_error=r_err,
        fed_subsz=subsz,
        fed_error=s_err,
        jsz=js,
        jsz_error=js_err,
        elapsed_s=time.perf_counter() - started,
    )
