"""The Flask health console of the seeds: login, overview/server/cluster/alerts pages, JSON API,
/metrics, a background sampler with SQLite history. Served by gunicorn (`seedctl console`)."""

from .app import create_app

__all__ = ["create_app"]
