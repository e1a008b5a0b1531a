"""The agent's web layer: JSON API, /ws live feed, dashboard, /metrics, OpenAPI document.

`create_app` and `WebOptions` load Flask on first use, so importing a submodule such as
`monitor_agent.web.auth` (`monitor-agent run` does before it execs the server) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WebOptions", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "WebOptions":
        from .state import WebOptions

        return WebOptions
    raise AttributeError(name)
