"""`HistorySink`: every run, slot outcome and incident into the `HistoryStore`, written
by a thread of its own so that a slow or full disk never delays a run or a scrape.

On the event loop, recording is an append to a bounded deque (`record`, called inline
by the fan-out: no queue hop, no task wake-up, no lock; rows are built and encoded by
the writer). The writer thread commits what arrived every `flush_interval` in one
transaction, recomputes the statistics every
`stats_interval` (the API and /metrics read them from memory), and applies retention.
History is best-effort: a database that cannot be opened or written is reported (log
`history_unavailable`, metric `synthmon_history_up` 0, `/readyz` detail) and retried
every 30 s, while runs, metrics and alerts carry on. A corrupt file is moved aside
(`history.sqlite3.corrupt-<time>`) and a new one started: its data is kept for
inspection, and recording resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from synthmon.alerting.alert import Alert
from synthmon.config.settings import HistoryConfig
from synthmon.model import RunResult
from synthmon.sinks.history.metrics import HistoryMetrics
from synthmon.sinks.history.overview import Overview
from synthmon.sinks.history.records import IncidentRecord, SlotRecord
from synthmon.sinks.history.stats import WINDOWS, WindowStats, window_stats
from synthmon.sinks.history.store import DB_NAME, HistoryStore, SqliteHistory

log = structlog.get_logger("synthmon.history")

T = TypeVar("T")
Item = RunResult | SlotRecord | IncidentRecord
REOPEN_AFTER = 30.0


class HistoryUnavailable(Exception):
    """The history database cannot be read right now (see /readyz)."""


class HistorySink:
    def __init__(
        self,
        config: HistoryConfig,
        *,
        data_dir: Path,
        registry: CollectorRegistry,
        location: str | None = None,
        clock: Callable[[], float] = time.time,
        store_factory: Callable[[Path], HistoryStore] = SqliteHistory,
    ) -> None:
        self.config = config
        self.path = Path(data_dir) / DB_NAME
        self.metrics = HistoryMetrics(registry, health=self.status, location=location)
        self._clock = clock
        self._factory = store_factory
        # Appended on the loop, popped by the writer: deque's append/popleft are atomic.
        self._q: deque[Item] = deque()
        self._publish_lock = threading.Lock()
        self._store: HistoryStore | None = None
        self._error: str | None = None
        self._last_problem: str | None = None
        self._corrupt = False
        self._opened_at = -REOPEN_AFTER
        self._size = 0
        self._stats: dict[tuple[str, str], dict[str, WindowStats]] = {}
        self._stats_json: dict[tuple[str, str], dict[str, dict[str, object]]] = {}
        self._pairs: frozenset[tuple[str, str]] = frozenset()
        # Sparklines and uptime bars for the status page, kept by the writer thread.
        self.overview = Overview()
        # Pairs whose figures must be recomputed before the next periodic refresh (an
        # incident opened or closed, a pair added): only those, not every pair.
        self._dirty: set[tuple[str, str]] = set()
        self._dirty_lock = threading.Lock()
        self._stop = threading.Event()
        self._opening = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self, wait: float = 5.0) -> dict[tuple[str, str], float]:
        """Open the database (off the loop) and return each pair's last recorded slot,
        so that slots missed while the daemon was down are recorded as missed."""
        try:
            async with asyncio.timeout(wait):
                return await asyncio.to_thread(self._open_and_last_slots)
        except TimeoutError:
            self._fail("open_failed", f"opening {self.path} took longer than {wait:g}s")
            return {}

    def _open_and_last_slots(self) -> dict[tuple[str, str], float]:
        # An open that outlives `wait` (a slow disk, a schema upgrade of a large file)
        # goes on in this thread; records wait in the queue meanwhile, not dropped.
        self._opening.set()
        try:
            return self._open_and_read_last_slots()
        finally:
            self._opening.clear()

    def _open_and_read_last_slots(self) -> dict[tuple[str, str], float]:
        for _ in range(2):
            if not self._try_open():
                return {}
            assert self._store is not None
            try:
                return self._store.last_slots()
            except (sqlite3.Error, OSError) as exc:
                self._fail("open_failed", f"reading {self.path}: {exc}")
                if not _damaged(exc):
                    return {}
                # A damaged file that still opens: moved aside, then one more try.
                self._corrupt = True
                self._close_store()
        return {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="synthmon-history", daemon=True)
        self._thread.start()

    async def stop(self, wait: float = 5.0) -> None:
        """Write what is queued (within `wait` seconds), then close the database."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, wait)
            self._thread = None
        if self._store is not None:
            with contextlib.suppress(sqlite3.Error):
                self._store.close()
            self._store = None

    # -- recording (event loop; never blocks) -----------------------------------------------

    def record(self, result: RunResult) -> None:
        """The fan-out calls this inline (like the metrics sink): an append."""
        self._put(result)

    async def emit(self, result: RunResult) -> None:
        self._put(result)

    def record_slot(self, record: SlotRecord) -> None:
        # A run of a pair removed while it was in flight is stored, but must not bring
        # back the series `set_catalog` removed.
        if (record.journey, record.target) in self._pairs:
            self.metrics.pairs.slot(
                record.journey, record.target, record.outcome.value, record.count
            )
        self._put(record)

    def alert_transition(self, alert: Alert) -> None:
        """The alerting engine's firing/resolved transitions open and close incidents."""
        if alert.state == "firing":
            if alert.alertname.value == "SyntheticJourneyFailed":
                self.metrics.pairs.incident(alert.journey, alert.target)
            fired = alert.fired_at if alert.fired_at is not None else self._clock()
            record = IncidentRecord(
                alertname=alert.alertname.value,
                journey=alert.journey,
                target=alert.target,
                incident=alert.incident,
                severity=alert.severity,
                started_at=alert.first_failure_at if alert.first_failure_at else fired,
                detected_at=fired,
                failed_step=alert.failing_step,
                first_error=alert.error_message,
                run_id=alert.run_id,
            )
        else:
            record = IncidentRecord(
                alertname=alert.alertname.value,
                journey=alert.journey,
                target=alert.target,
                incident=alert.incident,
                severity=alert.severity,
                started_at=0.0,
                detected_at=0.0,
                ended_at=alert.resolved_at or self._clock(),
            )
        self._put(record)

    def set_catalog(self, pairs: Iterable[tuple[str, str]]) -> None:
        new = frozenset(pairs)
        with self._publish_lock:  # a refresh in flight must not publish removed pairs
            for journey, target in new - self._pairs:
                self.metrics.pairs.add(journey, target)
            for journey, target in self._pairs - new:
                self.metrics.pairs.remove(journey, target)
            self._pairs = new
            self.overview.keep(new)
            self._stats = {k: v for k, v in self._stats.items() if k in new}
            self._stats_json = {k: v for k, v in self._stats_json.items() if k in new}
            self.metrics.pairs.publish(self._stats)
            added = new - self._stats.keys()
        self._mark_dirty(added)

    def _put(self, item: Item) -> None:
        if len(self._q) >= self.config.max_queue:
            self.metrics.problem("dropped")
            return
        self._q.append(item)

    # -- reading -------------------------------------------------------------------------------

    def stats(self, journey: str, target: str) -> dict[str, WindowStats] | None:
        return self._stats.get((journey, target))

    def stats_json(self, journey: str, target: str) -> dict[str, dict[str, object]] | None:
        """`stats` as JSON-ready data, built once per refresh (not per request)."""
        return self._stats_json.get((journey, target))

    def status(self) -> dict[str, Any]:
        return {
            "ok": self._store is not None and self._error is None,
            "path": str(self.path),
            "error": self._error,
            "last_problem": self._last_problem,
            "queued": len(self._q),
            "size_bytes": self._size,
        }

    async def query(self, fn: Callable[[HistoryStore], T]) -> T:
        """Run a read against the store in a thread (never on the event loop)."""
        store = self._store
        if store is None:
            raise HistoryUnavailable(self._error or "history database not open")
        try:
            return await asyncio.to_thread(fn, store)
        except (sqlite3.Error, OSError) as exc:
            raise HistoryUnavailable(str(exc)) from exc

    # -- the writer thread ---------------------------------------------------------------------

    def _fail(self, problem: str, error: str) -> None:
        if self._error != error:
            log.error(
                "history_unavailable",
                path=str(self.path),
                problem=problem,
                error=error,
                hint="monitoring and alerting continue; runs are not being recorded",
            )
        self._error = error
        self._last_problem = f"{problem}: {error}"
        self.metrics.problem(problem)

    def _try_open(self) -> bool:
        self._opened_at = time.monotonic()
        if self._corrupt:
            # Found damaged while in use: keep the file for inspection, start a new one.
            self._corrupt = not self._move_aside(None)
        try:
            self._store = self._factory(self.path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not self._move_aside(exc):
                self._fail("open_failed", f"cannot open {self.path}: {exc}")
                return False
            try:
                self._store = self._factory(self.path)
            except (sqlite3.Error, OSError) as exc2:
                self._fail("open_failed", f"cannot open {self.path}: {exc2}")
                return False
        except OSError as exc:
            self._fail("open_failed", f"cannot open {self.path}: {exc}")
            return False
        if self._error is not None:
            log.info("history_available", path=str(self.path))
        self._error = None
        with contextlib.suppress(sqlite3.Error):
            self._size = self._store.size_bytes()
        return True

    def _move_aside(self, exc: Exception | None) -> bool:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._clock())}")
        try:
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.rename(aside.with_name(aside.name + suffix))
        except OSError:
            return False
        why = str(exc) if exc is not None else self._error
        self._last_problem = f"corrupt: {why}; moved to {aside.name}"
        log.error(
            "history_corrupt",
            path=str(self.path),
            moved_to=str(aside),
            error=why,
            hint="a new history database was started; the old file is kept",
        )
        self.metrics.problem("corrupt")
        return True

    def _run(self) -> None:
        next_stats = 0.0
        next_maintenance = time.monotonic() + 60.0
        while True:
            batch = self._drain()
            if self._store is None and time.monotonic() - self._opened_at >= REOPEN_AFTER:
                self._try_open()
            if batch:
                self._write(batch)
            now = time.monotonic()
            if self._store is not None and now >= next_stats:
                self._take_dirty()
                self._refresh_stats(None)
                next_stats = now + self.config.stats_interval
            elif self._store is not None and self._dirty:
                self._refresh_stats(self._take_dirty())
            if self._store is not None and now >= next_maintenance:
                self._maintain()
                next_maintenance = now + self.config.maintenance_interval
            if self._stop.is_set() and not self._q:
                return

    def _drain(self) -> list[Item]:
        # Sleep, then take everything: one wake-up per flush_interval, not one per
        # record (each would take the GIL from the event loop).
        self._stop.wait(self.config.flush_interval)
        if self._opening.is_set() and not self._stop.is_set():
            return []
        pop = self._q.popleft
        return [pop() for _ in range(min(len(self._q), 20_000))]

    def _write(self, batch: list[Item]) -> None:
        if self._store is None:
            for _ in batch:
                self.metrics.problem("dropped")
            return
        runs = [i for i in batch if isinstance(i, RunResult)]
        slots = [i for i in batch if isinstance(i, SlotRecord)]
        incidents = [i for i in batch if isinstance(i, IncidentRecord)]
        try:
            self._store.write(runs, slots, incidents)
        except sqlite3.DatabaseError as exc:
            self._fail("write_failed", f"writing {self.path}: {exc}")
            if _damaged(exc):
                self._corrupt = True  # moved aside and started anew by the next loop
                self._close_store()
            return
        except OSError as exc:
            self._fail("write_failed", f"writing {self.path}: {exc}")
            return
        self.overview.observe(runs)
        if self._error is not None:
            log.info("history_available", path=str(self.path))
            self._error = None
        if incidents:
            self._mark_dirty((i.journey, i.target) for i in incidents)

    def _close_store(self) -> None:
        if self._store is not None:
            with contextlib.suppress(sqlite3.Error):
                self._store.close()
            self._store = None
            self._opened_at = -REOPEN_AFTER if self._corrupt else time.monotonic()

    def _mark_dirty(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self._dirty_lock:
            self._dirty.update(pairs)

    def _take_dirty(self) -> set[tuple[str, str]]:
        with self._dirty_lock:
            taken, self._dirty = self._dirty, set()
        return taken

    def _refresh_stats(self, only: set[tuple[str, str]] | None) -> None:
        """Recompute the figures of every pair, or of the pairs in `only` (the others
        keep theirs: an incident changes its own pair's figures only)."""
        assert self._store is not None
        now = self._clock()
        out: dict[tuple[str, str], dict[str, WindowStats]] = {}
        try:
            for journey, target in sorted(self._pairs if only is None else self._pairs & only):
                inputs = self._store.pair_inputs(journey, target, now, WINDOWS)
                out[(journey, target)] = {
                    name: window_stats(
                        name,
                        now=now,
                        seconds=seconds,
                        counted=inputs.counted[name][0],
                        passed=inputs.counted[name][1],
                        incidents=inputs.incidents,
                        first_slot_at=inputs.first_slot_at,
                        missed=inputs.missed,
                    )
                    for name, seconds in WINDOWS.items()
                }
                self.overview.refresh(self._store, journey, target, inputs.incidents, now)
            self._size = self._store.size_bytes()
        except (sqlite3.Error, OSError) as exc:
            self._fail("read_failed", f"reading {self.path}: {exc}")
            if _damaged(exc):
                self._corrupt = True
                self._close_store()
            return
        fresh = {k: {w: s.to_json() for w, s in v.items()} for k, v in out.items()}
        with self._publish_lock:
            if only is not None:
                out = {**self._stats, **out}
                fresh = {**self._stats_json, **fresh}
            self._stats = {k: v for k, v in out.items() if k in self._pairs}
            self._stats_json = {k: v for k, v in fresh.items() if k in self._pairs}
            self.metrics.pairs.publish(self._stats)

    def _maintain(self) -> None:
        assert self._store is not None
        try:
            deleted = self._store.maintain(
                self._clock(), self.config.max_age, int(self.config.max_size_mb * 1024 * 1024)
            )
            self._size = self._store.size_bytes()
        except (sqlite3.Error, OSError) as exc:
            self._fail("maintenance_failed", f"retention on {self.path}: {exc}")
            return
        if any(deleted.values()):
            log.info("history_retention", deleted=deleted, size_bytes=self._size)


def _damaged(exc: BaseException) -> bool:
    """The file itself is broken (not a database, malformed), as opposed to locked,
    read-only or full (OperationalError), which may pass."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
