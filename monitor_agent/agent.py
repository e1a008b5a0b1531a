"""`Agent`: wires config, store, identity, event bus, federation client and log sources.

Contract (docs/ARCHITECTURE.md):
  Agent(config)                    opens the store and the identity (creating node.key on first start)
  .config .store .identity .bus .federation .metrics .metrics_registry
  .start() / .stop()               stop: sources stopped, node_offline sent, writer flushed, db closed
  .submit_task_event(ev) -> LocalTask      thread-safe: store -> bus `local_task` -> federation
  .status()                        the PROTOCOL.md §6 status object (with `lastError`)
  .outbox_snapshot()               last 500 outgoing messages exactly as sent
  .apply_settings(changes) -> (settings, restart_required)   the four switches, live + persisted
  .clear_federation_data() -> {"tasks": n, "peers": m}
  .register_source(source)         see below

Sources: any object with `start()` and `stop()` (and optionally a `name`). The agent starts
registered sources in `start()` (or at once if already running) and stops them first in
`stop()`. Sources call `agent.submit_task_event(ev)` from their own threads and persist their
position with `agent.store.get_cursor/set_cursor`. If `submit_task_event` raises
`StoreError` (FED_006, database error) the event was not stored: keep the cursor where
it is and retry later.

Local monitoring never depends on federation: the store and sources run whatever the
federation client's state; a federation failure is only a status and an event.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import __version__
from .compare import Comparator, CompareCollector
from .config import SWITCHES, Config, save_settings
from .errors import StoreError
from .events import EventBus
from .federation import FederationClient
from .identity import Identity, load_identity
from .interfaces import AgentLike, Source
from .metrics import AgentMetrics
from .model import BROADCAST_STATUSES, LocalTask, TaskEvent
from .protocol import FedCode, FederationState
from .store import FederationTaskRow, Store, now_ms, to_ms
from .timestamps import rfc3339
from .web import serializers

log = logging.getLogger("monitor_agent")

STATS_TICK_S = 2.0
COMPARE_EVERY_TICKS = 3  # federation_compare at most every 6 s, and only when it changed


HISTORY_S = 600


def _is_history(ev: TaskEvent) -> bool:
    """An event read more than HISTORY_S after it happened (by the node's own log clock)."""
    at = getattr(ev, "at", None)
    return at is not None and (datetime.now(UTC) - at).total_seconds() > HISTORY_S


class Agent:
    def __init__(self, config: Config):
        self.config = config
        self.bus = EventBus()
        self.metrics = AgentMetrics()
        self.metrics_registry = self.metrics.registry
        self.identity: Identity = load_identity(config.data_dir, config.node_id)
        self._lock = threading.RLock()
        self._db_error: dict[str, Any] | None = None
        self.store = Store(
            config.db_path,
            retention_days=config.task_retention_days,
            max_db_mb=config.max_db_mb,
            on_federation_stored=self._on_federation_stored,
            on_error=self._on_store_error,
        )
        self._tasks_reported = int(self.store.get_meta("tasks_reported") or 0)
        # Me vs network: local tasks seeded now; received rows up to this id by a thread at start
        # (the federation is not started yet, so every later row comes through the callback).
        self.compare = Comparator()
        self.compare.rebuild_local(self.store)
        self._compare_mark = self.compare.federation_mark(self.store)
        self._last_compare: dict | None = None
        self.metrics_registry.register(CompareCollector(self.compare))
        self.federation = FederationClient(
            config,
            self.identity,
            self.store,
            self.metrics,
            emit=self.bus.publish,
            local_stats=self.store.local_stats,
            tasks_reported=lambda: self._tasks_reported,
        )
        self.metrics.bind_gauges(
            lambda: self.store.writer_backlog,
            lambda: self.store.network_stats()["connectedPeers"],
        )
        self._sources: list[Source] = []
        self._running = False
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._compare_seeder: threading.Thread | None = None
        self._last_stats: dict | None = None

    # ---- lifecycle ----

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        log.info(
            "agent %s starting: nodeId %s, data %s, federation %s",
            __version__,
            self.identity.node_id,
            self.config.data_dir,
            "on (" + self.config.seed_url_display + ")" if self.config.enable_federation else "off",
        )
        if self.config.enable_federation:
            self.federation.start()
        self._ticker_stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="agent-stats", daemon=True)
        self._ticker.start()
        self._compare_seeder = threading.Thread(target=self._seed_compare, name="agent-compare-seed", daemon=True)
        self._compare_seeder.start()
        for source in list(self._sources):
            self._start_source(source)

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                self.store.close()
                return
            self._running = False
        for source in reversed(self._sources):
            try:
                source.stop()
            except Exception:
                log.exception("stopping source %s failed", _name(source))
        self._ticker_stop.set()
        if self._ticker is not None:
            self._ticker.join(5)
        self.federation.stop()
        self._save_tasks_reported()
        # The seeding thread reads the store: closing a connection under a running query crashes
        # the process (seen as a segfault at shutdown), so it ends first (it stops between batches).
        if self._compare_seeder is not None:
            self._compare_seeder.join(10)
        self.store.close()
        self.bus.close_all("agent stopped")
        log.info("agent stopped")

    def register_source(self, source: Source) -> None:
        """Attach a log source; started with the agent (or at once if it is running)."""
        with self._lock:
            self._sources.append(source)
            running = self._running
        if running:
            self._start_source(source)

    def _start_source(self, source: Source) -> None:
        try:
            source.start()
        except Exception as exc:
            # A broken source must not take the agent (or the other sources) down.
            log.error("source %s failed to start: %s", _name(source), exc)

    # ---- ingestion ----

    def submit_task_event(self, ev: TaskEvent) -> LocalTask:
        """Store one lifecycle event; publish `local_task`; hand it to the federation if broadcasting."""
        self.metrics.local_task_events.labels(kind=ev.kind).inc()
        try:
            task, changed, old_status = self.store.merge_local_task(ev)
        except StoreError as exc:
            self._on_store_error(exc)
            raise
        self._db_error = None
        if not changed:
            return task
        self.metrics.local_task_changes.inc()
        self.federation.stats_changed()
        # The public shape (as GET /api/tasks without the token): what every /ws client sees.
        self.bus.publish("local_task", serializers.local_task(task, include_private=False))
        self.compare.add_local(
            task.execution_id,
            task.chain_id,
            task.task_type,
            task.status,
            old_status,
            task.execution_time_ms,
            to_ms(task.finished_at) or now_ms(),
        )
        # Broadcast once per status reached (a metrics-only merge sends nothing new). History is
        # never sent: an event already HISTORY_S old when read (the folder's backlog at a first
        # start, a long-stopped agent catching up) stays local, whatever the federation switches.
        if (
            task.status != old_status
            and task.status in BROADCAST_STATUSES
            and not _is_history(ev)
            and self.federation.publish_task(task)
        ):
            self._tasks_reported += 1
        return task

    # ---- web surface ----

    def status(self) -> dict[str, Any]:
        stats = self.store.network_stats()
        fields = self.federation.status_fields()
        last_error = self._db_error or fields["lastError"]
        return {
            "enabled": self.federation.state != FederationState.DISABLED,
            "connected": fields["connected"],
            "state": fields["state"],
            "nodeId": self.identity.node_id,
            "lastError": last_error,
            "catchUp": fields["catchUp"],
            "stats": {
                "connectedPeers": stats["connectedPeers"],
                "tasks24h": stats["tasks24h"],
                "activeNodes": stats["activeNodes"],
                "tasksCompleted24h": stats["tasksCompleted24h"],
                "avgExecutionMs": stats["avgExecutionMs"],
            },
        }

    def outbox_snapshot(self) -> list[dict[str, Any]]:
        return self.federation.outbox_snapshot()

    def settings(self) -> dict[str, bool]:
        return {
            "enabled": self.config.enable_federation,
            "broadcastTasks": self.federation.broadcast_tasks,
            "broadcastStats": self.federation.broadcast_stats,
            "receiveEnabled": self.federation.receive_enabled,
        }

    def apply_settings(self, changes: dict[str, bool]) -> tuple[dict[str, bool], bool]:
        """Apply any of the four switches live and persist them; (settings, restart_required)."""
        unknown = set(changes) - set(SWITCHES)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        for key, value in changes.items():
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
        with self._lock:
            save_settings(self.config.data_dir, changes)
            switched: dict[str, Any] = {SWITCHES[k]: v for k, v in changes.items()}
            self.config = replace(self.config, **switched)
            self.federation.config = self.config
            self.federation.set_switches(
                broadcast_tasks=changes.get("broadcastTasks"),
                broadcast_stats=changes.get("broadcastStats"),
                receive_enabled=changes.get("receiveEnabled"),
            )
            if "enabled" in changes and self._running:
                if changes["enabled"] and not self.federation.running:
                    self.federation.start()
                elif not changes["enabled"] and self.federation.running:
                    self.federation.stop()
            log.info("settings changed: %s", ", ".join(f"{k}={v}" for k, v in sorted(changes.items())))
        return self.settings(), False

    def clear_federation_data(self) -> dict[str, int]:
        counts = self.store.clear_federation()
        self.compare.clear_federation()
        self.federation.pipeline.forget()
        self._last_stats = None
        log.info("cleared federation data: %d tasks, %d peers", counts["tasks"], counts["peers"])
        self.bus.publish("federation_stats", self._stats_event())
        return counts

    # ---- callbacks and background ----

    def _on_federation_stored(self, rows: list[FederationTaskRow]) -> None:
        self.metrics.stored.inc(len(rows))
        self.compare.add_federation_rows(rows)
        for row in rows:
            self.bus.publish("federation_task", serializers.federation_task_event(row))

    def _on_store_error(self, exc: StoreError) -> None:
        self._db_error = {"code": exc.code.value, "message": exc.message, "at": _now_iso()}
        if exc.code == FedCode.DATABASE_ERROR:
            self.metrics.errors.labels(code=exc.code.value).inc()
        self.bus.publish("federation_error", dict(self._db_error))

    def _stats_event(self) -> dict[str, Any]:
        s = self.store.network_stats()
        return {
            "activeNodes": s["activeNodes"],
            "connectedPeers": s["connectedPeers"],
            "tasks24h": s["tasks24h"],
            "tasksCompleted24h": s["tasksCompleted24h"],
            "avgExecutionMs": s["avgExecutionMs"],
        }

    def _tick(self) -> None:
        """Emit federation_stats when the network figures change; persist the report counter."""
        ticks = 0
        while not self._ticker_stop.wait(STATS_TICK_S):
            ticks += 1
            try:
                stats = self._stats_event()
                if stats != self._last_stats:
                    self._last_stats = stats
                    self.bus.publish("federation_stats", stats)
                if ticks % COMPARE_EVERY_TICKS == 0:
                    self._publish_compare()
                if ticks % 30 == 0:
                    self._save_tasks_reported()
                    self.compare.sweep(now_ms())
            except StoreError as exc:
                self._on_store_error(exc)
            except Exception:
                log.exception("stats tick failed")

    def _seed_compare(self) -> None:
        try:
            self.compare.rebuild_federation(self.store, self._compare_mark, stop=self._ticker_stop)
        except StoreError as exc:
            log.warning("compare: could not read received tasks at start-up: %s", exc)
        except Exception:
            log.exception("compare: seeding from the store failed")

    def _publish_compare(self) -> None:
        """`federation_compare`: the 1 h comparison of every chain, when its figures changed."""
        body = self.compare.fresh(None, None, "1h")
        key = {k: v for k, v in body.items() if k != "generatedAt"}
        if key != self._last_compare:
            self._last_compare = key
            self.bus.publish("federation_compare", body)

    def _save_tasks_reported(self) -> None:
        try:
            self.store.set_meta("tasks_reported", str(self._tasks_reported))
        except StoreError as exc:
            log.warning("could not save tasks_reported: %s", exc)

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _name(source: Any) -> str:
    return str(getattr(source, "name", type(source).__name__))


def _now_iso() -> str:
    return rfc3339()


if TYPE_CHECKING:

    def _agent_is_agent_like(agent: Agent) -> AgentLike:  # mypy: Agent provides what its users use
        return agent
