"""Tiny inline SVG sparklines drawn on the server: no chart library, no JavaScript, no CDN."""

from __future__ import annotations

from markupsafe import Markup, escape


def points_path(
    values: list[tuple[float, float]], width: int, height: int, pad: float = 2.0
) -> tuple[str, float, float]:
    """SVG polyline points for (t, v) pairs scaled into the box; also the min and max value."""
    ts = [t for t, _ in values]
    vs = [v for _, v in values]
    t0, t1 = min(ts), max(ts)
    lo, hi = min(vs), max(vs)
    span_t = (t1 - t0) or 1.0
    span_v = (hi - lo) or 1.0
    pts = []
    for t, v in values:
        x = pad + (t - t0) / span_t * (width - 2 * pad)
        y = height - pad - (v - lo) / span_v * (height - 2 * pad)
        pts.append(f"{x:.1f},{y:.1f}")
    return " ".join(pts), lo, hi


def sparkline(values: list[tuple[float, float]], *, label: str, width: int = 240, height: int = 48,
              fmt=lambda v: f"{v:.4g}") -> Markup:  # fmt: skip
    """An accessible SVG: the line, the last value, and min/max in the title for hover."""
    if not values:
        return Markup(  # noqa: S704 - numbers and escape()d text only
            f'<svg class="spark empty" width="{width}" height="{height}" role="img" aria-label="{escape(label)}: no data">'
            f'<text x="4" y="{height // 2 + 4}">no data yet</text></svg>'
        )
    if len(values) == 1:
        values = [(values[0][0] - 1, values[0][1]), values[0]]
    pts, lo, hi = points_path(values, width, height)
    last = values[-1][1]
    title = f"{label}: now {fmt(last)}, min {fmt(lo)}, max {fmt(hi)}"
    return Markup(  # noqa: S704 - numbers and escape()d text only
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{pts}"/></svg>'
    )
