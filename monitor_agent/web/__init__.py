"""The agent's web layer: JSON API, /ws live feed, dashboard, /metrics, OpenAPI document."""

from .app import create_app
from .state import WebOptions

__all__ = ["WebOptions", "create_app"]
