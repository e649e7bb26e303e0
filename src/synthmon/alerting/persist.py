"""Alerting's persistence when the data dir fails (disk full, read-only, I/O errors).

Delivery of a notification must never depend on the disk: the database is how alerts
survive a *restart*, not how they reach the on-call. So:

- `DiskHealth` knows whether the last write to the alerting database worked; it is
  the `synthmon_data_dir_writable` gauge, the `synthmon_data_dir_write_errors_total`
  counter and the `data_dir` check of `/readyz`. It logs `data_dir_write_failed` when
  writes start failing (then at most once a minute while they keep failing) and
  `data_dir_writable` when they work again, never once per result.
- `GuardedStore` is the `AlertStore` whose alert-state writes never raise: a write the
  disk refuses stays pending in memory and is written by the next write that works
  (or by `retry()`, which the outbox calls while the disk is failing). The outbox keeps
  notifications the database refused in memory itself (`alerting.outbox`).

What is only in memory is lost by a restart during the disk failure; everything else
(delivery, retries, states, the metric) carries on.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.alerting.store import AlertStore

log = structlog.get_logger("synthmon.alerting.persist")

# What a failing disk raises through sqlite3 (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY,
# SQLITE_CANTOPEN, a busy lock) or through the file system.
DISK_ERRORS = (sqlite3.Error, OSError)

T = TypeVar("T")


class DiskHealth:
    """Whether the alerting database in data_dir takes writes."""

    LOG_EVERY = 60.0  # seconds between repeated data_dir_write_failed lines

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        location: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.writable_gauge = Gauge(
            "synthmon_data_dir_writable",
            "1 while the alerting database in data_dir takes writes; 0 while it fails "
            "(disk full, read-only, I/O error): notifications are then delivered and "
            "retried from memory and persisted when the disk is back.",
            loc,
            registry=registry,
        )
        self.errors = Counter(
            "synthmon_data_dir_write_errors",
            "Writes to data_dir that failed, by what was written (outbox|state).",
            ("what", *loc),
            registry=registry,
        )
        for what in ("outbox", "state"):
            self.errors.labels(what, *self._loc)
        self._set_gauge(1)
        self._clock = clock
        self.error: str | None = None
        self.path: Path | None = None
        self._logged_at = 0.0
        self._suppressed = 0

    def _set_gauge(self, value: int) -> None:
        (self.writable_gauge.labels(*self._loc) if self._loc else self.writable_gauge).set(value)

    @property
    def writable(self) -> bool:
        return self.error is None

    def failed(self, what: str, exc: BaseException) -> None:
        self.errors.labels(what, *self._loc).inc()
        now = self._clock()
        first = self.error is None
        self.error = str(exc) or type(exc).__name__
        self._set_gauge(0)
        if first or now - self._logged_at >= self.LOG_EVERY:
            log.error(
                "data_dir_write_failed",
                path=str(self.path) if self.path else None,
                what=what,
                error=self.error,
                failures_since_last_log=self._suppressed,
                hint="notifications are delivered from memory meanwhile; free space in "
                "data_dir (or make it writable) so alerts survive a restart again",
            )
            self._logged_at = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def ok(self) -> None:
        if self.error is not None:
            log.warning("data_dir_writable", path=str(self.path) if self.path else None)
        self.error = None
        self._suppressed = 0
        self._set_gauge(1)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """The `data_dir` check of /readyz."""
        detail: dict[str, Any] = {"writable": self.writable, "path": str(self.path)}
        if self.error is not None:
            detail["error"] = self.error
            detail["hint"] = (
                "the alerting database cannot be written: notifications are delivered "
                "from memory and lost by a restart until the disk is fixed"
            )
        return self.writable, detail


class GuardedStore(AlertStore):
    """An AlertStore whose alert-state writes never raise on a failing disk."""

    def __init__(self, path: Path, health: DiskHealth) -> None:
        super().__init__(path)
        self.health = health
        health.path = path
        # key -> state to write, or None to delete; in the order they were asked for.
        self._pending: dict[str, Mapping[str, Any] | None] = {}

    def attempt(self, what: str, write: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        """Run one write; on a disk error roll back, note it and return (False, None)."""
        try:
            value = write(*args)
        except DISK_ERRORS as exc:
            self._recover()
            self.health.failed(what, exc)
            return False, None
        self.health.ok()
        return True, value

    def _recover(self) -> None:
        # SQLite may or may not have rolled the transaction back itself on SQLITE_FULL.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.debug("rollback_failed", error=str(exc))

    def persist(
        self, rows: list[tuple[str, Mapping[str, Any], float, str | None, int, float]]
    ) -> None:
        """Write notifications kept in memory, in order: (notifier, payload, created,
        coalesce_key, attempts, next_attempt). Raises on a disk error (nothing written)."""
        with self._tx() as db:
            for notifier, payload, created, key, attempts, next_attempt in rows:
                if key is not None:
                    db.execute("DELETE FROM outbox WHERE coalesce_key = ?", (key,))
                db.execute(
                    "INSERT INTO outbox (notifier, coalesce_key, payload, created, attempts, "
                    "next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        notifier,
                        key,
                        json.dumps(payload, sort_keys=True),
                        created,
                        attempts,
                        next_attempt,
                    ),
                )

    # -- alert states: pending in memory when the disk refuses ------------------------

    def save_state(self, key: str, state: Mapping[str, Any]) -> None:
        self._pending[key] = state
        self.retry()

    def save_states(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        self._pending.update(states)
        self.retry()

    def delete_state(self, key: str) -> None:
        self._pending[key] = None
        self.retry()

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def retry(self) -> bool:
        """Write the pending states in one transaction; True when nothing is pending."""
        if not self._pending:
            return True
        pending = dict(self._pending)
        saves = {k: v for k, v in pending.items() if v is not None}
        deletes = [k for k, v in pending.items() if v is None]

        def write() -> None:
            if saves:
                super(GuardedStore, self).save_states(saves)
            for key in deletes:
                super(GuardedStore, self).delete_state(key)

        ok, _ = self.attempt("state", write)
        if ok:
            for key, value in pending.items():
                if self._pending.get(key) is value:
                    del self._pending[key]
        return ok and not self._pending
