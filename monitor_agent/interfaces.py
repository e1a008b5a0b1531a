"""The agent as the rest of the package sees it: typed protocols, not `Any`.

`AgentLike` is what the web layer (API, /ws, dashboard, /metrics), the log sources and the
server use of `monitor_agent.agent.Agent`; mypy checks that `Agent` provides all of it (see the
end of agent.py), so a renamed method fails the type check instead of a request. `Source` is
what the agent needs of a log source. Nothing here is imported at run time by the agent's hot
paths: the types behind the names are imported for the type checker only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .compare import Comparator
    from .config import Config
    from .events import EventBus
    from .federation import FederationClient
    from .model import LocalTask, TaskEvent
    from .store import Store


class Source(Protocol):
    """A log source: started with the agent, stopped first when it stops (optionally a `name`)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class AgentLike(Protocol):
    """The agent's surface (its contract is in agent.py's docstring and docs/ARCHITECTURE.md)."""

    config: Config
    store: Store
    bus: EventBus
    compare: Comparator
    federation: FederationClient
    metrics_registry: CollectorRegistry

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def register_source(self, source: Source) -> None: ...
    def submit_task_event(self, ev: TaskEvent) -> LocalTask: ...
    def status(self) -> dict[str, Any]: ...
    def outbox_snapshot(self) -> list[dict[str, Any]]: ...
    def settings(self) -> dict[str, bool]: ...
    def apply_settings(self, changes: dict[str, bool]) -> tuple[dict[str, bool], bool]: ...
    def clear_federation_data(self) -> dict[str, int]: ...
