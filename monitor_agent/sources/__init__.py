"""Where the agent reads its own node's data: the container's output (docker), the debug log
folder (files), or nothing; plus the one-off EventDB import and the demo's log replayer."""

from __future__ import annotations

from ..config import Config
from ..interfaces import AgentLike, Source


def build_sources(config: Config, agent: AgentLike) -> list[Source]:
    """The log sources NODE_LOG_SOURCE asks for, not started (the agent starts them)."""
    if config.node_log_source == "docker":
        from .docker import DockerSource

        return [DockerSource(agent, config.node_container, config.docker_host)]
    if config.node_log_source == "files":
        from .files import FileSource

        assert config.node_log_dir is not None  # load_config: NODE_LOG_DIR is required with files
        return [FileSource(agent, config.node_log_dir)]
    return []


__all__ = ["build_sources"]
