"""The console's background sampler: every N seconds, check every seed and keep the history.

One thread owns one asyncio loop and one pooled httpx client for its whole life; request
threads only read `latest()` (a snapshot swapped under a lock) and the SQLite history.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from monitor_agent.loops import close_loop
from seed.health import DigestOracle, check_servers, new_http_client, remember, sysreq
from seed.health.checks import Thresholds

from .history import History

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600


class Sampler:
    """Polls the seeds of the spec at `spec_path`; re-reads the spec when the file changes."""

    def __init__(
        self,
        spec_path: Path | str,
        history: History,
        *,
        interval: float | None = None,
        timeout: float = 2.0,
        thresholds: Thresholds | None = None,
        poll_histogram=None,
        via: str = "auto",
    ):
        from seed.spec import load_spec

        self.spec_path = Path(spec_path)
        self.spec = load_spec(self.spec_path)  # a broken spec at start-up is the caller's one-line error
        self._spec_stat = self._stat()
        self.spec_error: str | None = None
        self.history = history
        self.interval = float(interval or self.spec.console.sample_interval_s)
        self.timeout = timeout
        self.thresholds = thresholds
        self.oracle = DigestOracle()
        self.memory: dict[str, dict] = {}
        self.poll_histogram = poll_histogram
        self.via = via  # http | nats | auto (seed.health.sysreq.choose_via)
        self._sys = None  # the admin's NATS connection, kept between rounds (nats)
        self.rounds = 0
        self.last_round_at: float | None = None
        self.last_round_s: float | None = None
        self._latest: tuple[float | None, list] = (None, [])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0

    # ---- what request threads read ----

    def latest(self) -> tuple[float | None, list]:
        """(time of the last round, its ServerReports in spec order)."""
        with self._lock:
            return self._latest

    def report(self, name: str):
        return next((r for r in self.latest()[1] if r.name == name), None)

    @property
    def stalled(self) -> bool:
        """No round finished for three intervals (after the first one was due)."""
        ref = self.last_round_at or self._started_at
        return ref is not None and time.time() - ref > 3 * self.interval + self.timeout

    # ---- life cycle ----

    _started_at: float | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="seed-console-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def poke(self) -> None:
        """Sample now instead of at the next tick."""
        self._wake.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        http = None
        try:
            http = loop.run_until_complete(self._make_client())
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    loop.run_until_complete(self._round(http))
                except Exception:  # keep sampling: one bad round must not end the console's eyes
                    log.exception("sampling round failed")
                spent = time.monotonic() - started
                self._wake.wait(max(0.0, self.interval - spent))
                self._wake.clear()
        finally:
            if http is not None:
                loop.run_until_complete(http.aclose())
            if self._sys is not None:
                loop.run_until_complete(self._sys.close())
            close_loop(loop)
            self.history.close()

    @staticmethod
    async def _make_client():
        return new_http_client()

    def _stat(self):
        try:
            st = self.spec_path.stat()
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def _refresh_spec(self) -> None:
        """Pick up an edited spec; a broken edit keeps the last good one and says why."""
        from seed.spec import SpecError, load_spec

        stat = self._stat()
        if stat == self._spec_stat:
            return
        self._spec_stat = stat
        try:
            self.spec = load_spec(self.spec_path)
            self.spec_error = None
            log.info("spec %s changed: reloaded", self.spec_path)
        except SpecError as exc:
            self.spec_error = str(exc)
            log.warning("spec %s changed but is invalid, keeping the previous one: %s", self.spec_path, exc)

    async def _sys_conn(self, via: str):
        """The kept admin connection (nats): reconnected when lost; None lets the round say why."""
        if via != "nats":
            return None
        if self._sys is not None and self._sys.is_connected:
            return self._sys
        if self._sys is not None:
            await self._sys.close()
            self._sys = None
        try:
            self._sys = await sysreq.connect(self.spec, self.timeout)
        except sysreq.SysError as exc:
            log.warning("health over NATS: %s", exc)
        return self._sys

    async def _round(self, http) -> list:
        self._refresh_spec()
        started = time.perf_counter()
        via = sysreq.choose_via(self.spec, None, self.via)
        reports = await check_servers(
            self.spec,
            memory=self.memory,
            oracle=self.oracle,
            thresholds=self.thresholds,
            timeout=self.timeout,
            http=http,
            via=via,
            sys_conn=await self._sys_conn(via),
        )
        elapsed = time.perf_counter() - started
        now = time.time()
        self.memory = remember(self.memory, reports)
        self._store(now, reports)  # the loop thread has nothing else to do meanwhile
        with self._lock:
            self._latest = (now, reports)
        self.rounds += 1
        self.last_round_at = now
        self.last_round_s = elapsed
        if self.poll_histogram is not None:
            self.poll_histogram.observe(elapsed)
        return reports

    def _store(self, now: float, reports) -> None:
        try:
            self.history.record(now, reports)
            if now - self._last_prune > PRUNE_EVERY_S:
                pruned = self.history.prune(now)
                self._last_prune = now
                if pruned:
                    log.info("pruned %d samples older than the retention", pruned)
        except Exception:
            log.exception("cannot write the console history")
