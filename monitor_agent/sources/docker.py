"""The runner-node container's output as a source, through the Docker Engine API (read-only).

Finds the container by name, follows `GET /containers/{id}/logs?follow=1&stdout=1&stderr=1&
timestamps=1&since=<cursor>`, demultiplexes the 8-byte frames, and reconnects when the
container stops, restarts or is re-created. The cursor is the daemon's own timestamp of the
first line of the entry still open (plus how many lines with that same timestamp come before
it), so a restart of the agent resumes exactly there.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..errors import StoreError
from ..interfaces import AgentLike
from ..logs import LogParser
from .docker_api import DockerClient, DockerError, socket_path
from .docker_stream import Demuxer, LineSplitter, ProtocolError, since_param
from .sink import RecordSink

log = logging.getLogger("monitor_agent.sources.docker")

RAW_STREAM = "application/vnd.docker.raw-stream"


class DockerSource:
    """Follows the node container's logs (NODE_LOG_SOURCE=docker)."""

    name = "docker"

    def __init__(
        self,
        agent: AgentLike,
        container: str = "runner-node",
        docker_host: str = "unix:///var/run/docker.sock",
        *,
        retry_interval: float = 2.0,
        idle_flush: float = 0.5,
        poll: float = 0.25,
    ):
        self.agent = agent
        self.container = container.lstrip("/")
        self.client = DockerClient(socket_path(docker_host), poll=poll)
        self.retry_interval = retry_interval
        self.idle_flush = idle_flush
        self.cursor_key = f"docker:{self.container}"
        self.sink = RecordSink(agent)
        self.parser = LogParser()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.container_id: str | None = None
        self.reconnects = 0
        self.errors = 0
        self._last_problem: str | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="source-docker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "container": self.container,
            "connected": self.connected,
            "reconnects": self.reconnects,
            "parser": self.parser.stats.as_dict(),
            **self.sink.snapshot(),
        }

    def _problem(self, text: str) -> None:
        """Log a problem once until it changes (a missing container is not worth a line every 2 s)."""
        if text != self._last_problem:
            log.warning("node logs: %s", text)
            self._last_problem = text

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                info = self.client.inspect(self.container)
                if info is None:
                    self._problem(f"no container named {self.container!r} (NODE_CONTAINER); waiting for it")
                elif not (info.get("State") or {}).get("Running"):
                    self._problem(f"container {self.container!r} is not running; waiting for it")
                    # Its logs up to the stop are still worth reading once.
                    self._follow(info)
                else:
                    self._follow(info)
            except DockerError as exc:
                self._problem(str(exc))
            except StoreError as exc:
                self.errors += 1
                log.error("node logs: %s; reading again from the saved position", exc)
                self.parser = LogParser()
            except ProtocolError as exc:
                self.errors += 1
                self._problem(f"unexpected data from the Docker daemon: {exc}")
                self.parser = LogParser()
            except Exception:
                self.errors += 1
                log.exception("node logs: docker reader failed; reconnecting")
                self.parser = LogParser()
            self.connected = False
            self._stop.wait(self.retry_interval)

    def _follow(self, info: dict) -> None:
        cid = info.get("Id") or self.container
        tty = bool((info.get("Config") or {}).get("Tty"))
        running = bool((info.get("State") or {}).get("Running"))
        cursor = self.agent.store.get_cursor(self.cursor_key) or {}
        ts, skip = cursor.get("ts"), int(cursor.get("skip") or 0)
        if not isinstance(ts, str) or len(ts) < 30:
            ts, skip = None, 0
        if cursor.get("cid") not in (None, cid):
            # A re-created container (same name, new id) has logs of its own: read them from their
            # start. The old position would be wrong twice: the daemon stamps lines to the second,
            # so `skip` (lines already read at that second) counted the old container's lines and
            # would pass over the new container's first ones.
            ts, skip = None, 0
        if self.container_id not in (None, cid):
            log.info("node logs: container %s was re-created (now %s)", self.container, cid[:12])
        self.container_id = cid
        seen_at_ts = 0  # lines with timestamp == ts already passed over in this stream
        last_ts, last_n = ts, skip  # position after the last line fed
        demux = None
        splitters: dict[int, LineSplitter] = {}
        last_data = time.monotonic()
        for ctype, body in self.client.logs(cid, since_param(ts) if ts else None, self._stop):
            if not self.connected:
                self.connected = True
                self._last_problem = None
                log.info("node logs: following container %s (%s)", self.container, cid[:12])
            now = time.monotonic()
            if not body:
                if self.parser.pending and now - last_data >= self.idle_flush:
                    self.sink.deliver(list(self.parser.flush()))  # the node went quiet
                    self._save(last_ts, last_n)
                continue
            last_data = now
            if demux is None and not tty and RAW_STREAM not in ctype:
                demux = Demuxer()
            frames = demux.feed(body) if demux is not None else [(1, body)]
            records: list = []
            fed = False
            for stream, payload in frames:
                splitter = splitters.get(stream)
                if splitter is None:
                    splitter = splitters[stream] = LineSplitter()
                for line_ts, raw in splitter.feed(payload):
                    if line_ts is not None and ts is not None:
                        if line_ts < ts:
                            continue  # before the cursor (the daemon's `since` is inclusive)
                        if line_ts == ts and seen_at_ts < skip:
                            seen_at_ts += 1
                            continue
                    if line_ts is not None:
                        last_n = last_n + 1 if line_ts == last_ts else 1
                        last_ts = line_ts
                        pos = (line_ts, last_n - 1)
                    else:
                        pos = None
                    got = self.parser.feed(raw.decode("utf-8", "replace"), pos)
                    if got:
                        records.extend(got)
                    fed = True
            if fed:
                self.sink.deliver(records)
                self._save(last_ts, last_n)
        # The stream ended: the container stopped or restarted (or we are stopping).
        if not self._stop.is_set():
            self.sink.deliver(list(self.parser.flush()))
        self._save(last_ts, last_n)
        if running and not self._stop.is_set():
            self.reconnects += 1
            log.info("node logs: log stream of %s ended (container stopped or restarted)", self.container)

    def _save(self, last_ts: str | None, last_n: int) -> None:
        pos = self.parser.resume_pos
        if pos is not None:
            ts, before = pos
            self.agent.store.set_cursor(self.cursor_key, {"ts": ts, "skip": before, "cid": self.container_id})
        elif last_ts is not None:
            self.agent.store.set_cursor(self.cursor_key, {"ts": last_ts, "skip": last_n, "cid": self.container_id})
