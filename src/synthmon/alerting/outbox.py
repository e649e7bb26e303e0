"""The outbox: notifications are written to SQLite first and delivered by a background
task, so an alert decision never waits on a receiver and survives a restart.

Delivery per notifier is in order: when a notifier fails, its later notifications wait
for the same backoff (exponential, with jitter, capped), so a resolve never overtakes
its trigger. Retryable failures are retried forever (the depth gauge and the error
counter show it); a receiver that rejects the payload itself (4xx) gets it dropped
with an error log, since sending the same bytes again cannot succeed.

The disk never decides whether an alert is delivered (docs/alerting.md): when the
database refuses a notification (disk full, read-only), it is kept in memory, delivered
at once and retried from memory like any other; it is written to the database as soon
as a write works again (`alerting.persist`). Notifications in memory are always newer
than those in the database, so delivery per notifier stays in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from synthmon.alerting.alert import Alert
from synthmon.alerting.metrics import AlertMetrics
from synthmon.alerting.notifiers import Notifier
from synthmon.alerting.persist import DISK_ERRORS, GuardedStore
from synthmon.alerting.store import OutboxEntry
from synthmon.errors import DeliveryError

log = structlog.get_logger("synthmon.alerting.outbox")

# While the disk fails, how often the outbox tries to write what it holds in memory.
DISK_RETRY = 1.0


@dataclass(slots=True)
class _InMemory:
    """A notification the database could not take. `id` is negative (never a row id)."""

    id: int
    notifier: str
    payload: dict[str, Any]
    created: float
    coalesce_key: str | None
    attempts: int = 0
    next_attempt: float = 0.0

    def entry(self) -> OutboxEntry:
        return OutboxEntry(self.id, self.notifier, self.payload, self.attempts, self.created)


class Outbox:
    def __init__(
        self,
        store: GuardedStore,
        notifiers: Mapping[str, Notifier],
        metrics: AlertMetrics,
        *,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        send_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._metrics = metrics
        self._base = base_delay
        self._max = max_delay
        self._timeout = send_timeout
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        # A notifier whose earliest notification failed waits as a whole, so nothing
        # overtakes it; restored from the store, so a restart keeps that order.
        self._blocked_until: dict[str, float] = store.retry_after()
        self._failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        # One delivery pass at a time: the background loop and stop()'s flush must not
        # both pick up the same row (a duplicate page).
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Notifications the disk refused, oldest first, and rows delivered whose
        # deletion the disk refused (skipped until the delete works: no duplicates).
        self._memory: list[_InMemory] = []
        self._undeleted: set[int] = set()
        self._seq = 0
        for name in self._notifiers:
            metrics.init_notifier(name)
        self._set_depth()

    def enqueue(self, notifier: str, alert: Alert, *, coalesce: bool = False) -> None:
        """Persist one notification (or keep it in memory when the disk refuses it).
        `coalesce`: replace an undelivered one for the same alert (Alertmanager only
        needs the latest state)."""
        key = f"{notifier}|{alert.key}" if coalesce else None
        now = self._clock()
        payload = alert.to_json()
        stored = False
        # Older notifications still in memory go first, or order would break.
        if self._persist_memory():
            stored, _ = self._store.attempt(
                "outbox", self._store.enqueue, notifier, payload, now, key
            )
        if not stored:
            if key is not None:
                self._memory = [m for m in self._memory if m.coalesce_key != key]
            self._seq += 1
            self._memory.append(_InMemory(-self._seq, notifier, payload, now, key, 0, now))
        self._set_depth()
        self._wake.set()

    def depth(self) -> int:
        return sum(self._depths().values())

    @property
    def in_memory(self) -> int:
        """Notifications only in memory (lost by a restart until persisted)."""
        return len(self._memory)

    def _depths(self) -> dict[str, int]:
        try:
            depth = dict(self._store.depth())
        except DISK_ERRORS as exc:
            log.warning("outbox_depth_unreadable", error=str(exc))
            depth = {}
        for m in self._memory:
            depth[m.notifier] = depth.get(m.notifier, 0) + 1
        return depth

    def _set_depth(self) -> None:
        depth = self._depths()
        if self._undeleted:
            # Delivered, only their deletion is pending: not waiting for delivery.
            try:
                rows = self._store.due(float("inf"), set())
            except DISK_ERRORS:
                rows = []
            for row in rows:
                if row.id in self._undeleted:
                    depth[row.notifier] = max(0, depth.get(row.notifier, 0) - 1)
        self._metrics.set_depth(depth)

    def _persist_memory(self) -> bool:
        """Write what the disk refused before, in order; True when nothing is left in
        memory. Also retries the deletes of delivered rows and pending alert states."""
        for row_id in list(self._undeleted):
            if self._store.attempt("outbox", self._store.delivered, row_id)[0]:
                self._undeleted.discard(row_id)
        if self._store.has_pending:
            self._store.retry()
        if not self._memory:
            return True
        if self._lock.locked():
            # A delivery pass may be sending one of them right now: writing it to the
            # database too would deliver it twice. The loop persists after the pass.
            return False
        rows = [
            (m.notifier, m.payload, m.created, m.coalesce_key, m.attempts, m.next_attempt)
            for m in self._memory
        ]
        ok, _ = self._store.attempt("outbox", self._store.persist, rows)
        if ok:
            log.info("outbox_persisted_from_memory", notifications=len(rows))
            self._memory.clear()
        return ok

    @property
    def _disk_backlog(self) -> bool:
        return bool(self._memory or self._undeleted or self._store.has_pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="synthmon-outbox")

    async def stop(self, flush_seconds: float = 2.0) -> None:
        """Try to deliver what is due for up to `flush_seconds`, then stop. Whatever is
        left stays in the database for the next start."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_seconds):
                while await self.deliver_due():
                    pass
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if not self._persist_memory():
            log.error(
                "notifications_lost",
                notifications=len(self._memory),
                notifiers=sorted({m.notifier for m in self._memory}),
                hint="data_dir could not be written: these undelivered notifications "
                "were only in memory and are lost by this stop",
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                # A bug here must not end delivery for good.
                log.exception("outbox_loop_failed")
            self._wake.clear()
            now = self._clock()
            if self._disk_backlog:
                self._persist_memory()
            try:
                nxt = self._store.next_due()
            except DISK_ERRORS:
                nxt = now + DISK_RETRY
            waits = [t for t in self._blocked_until.values() if t > now]
            waits += [max(m.next_attempt, now) for m in self._memory]
            if self._disk_backlog:
                waits.append(now + DISK_RETRY)
            if nxt is not None:
                waits.append(max(nxt, now))
            timeout = max(0.01, min(waits) - now) if waits else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def deliver_due(self) -> int:
        """Deliver every due notification once; returns how many were delivered."""
        async with self._lock:
            return await self._deliver_due()

    async def _deliver_due(self) -> int:
        now = self._clock()
        blocked = {n for n, t in self._blocked_until.items() if t > now}
        delivered = 0
        try:
            rows = [e for e in self._store.due(now, blocked) if e.id not in self._undeleted]
        except DISK_ERRORS as exc:
            log.warning("outbox_unreadable", error=str(exc))
            rows = []
        # The database holds the older notifications: per notifier they go first.
        entries = rows + [m.entry() for m in self._memory if m.next_attempt <= now]
        for entry in entries:
            if entry.notifier in blocked:
                continue  # blocked by an earlier entry's failure in this pass
            if await self._deliver(entry):
                delivered += 1
            else:
                blocked.add(entry.notifier)
        self._set_depth()
        return delivered

    def _done(self, entry: OutboxEntry) -> None:
        if entry.id < 0:
            self._memory = [m for m in self._memory if m.id != entry.id]
        elif not self._store.attempt("outbox", self._store.delivered, entry.id)[0]:
            self._undeleted.add(entry.id)

    def _retry_later(self, entry: OutboxEntry, retry_at: float, error: str) -> None:
        if entry.id < 0:
            for m in self._memory:
                if m.id == entry.id:
                    m.attempts += 1
                    m.next_attempt = retry_at
        else:
            # If the disk refuses even this, the notifier's backoff still holds it back.
            self._store.attempt("outbox", self._store.failed, entry.id, retry_at, error)

    async def _deliver(self, entry: OutboxEntry) -> bool:
        notifier = self._notifiers.get(entry.notifier)
        if notifier is None:
            log.error(
                "outbox_unknown_notifier",
                notifier=entry.notifier,
                hint="the notifier was removed from [alerting] config; notification dropped",
            )
            self._done(entry)
            self._metrics.notified(entry.notifier, "dropped")
            return True
        alert = Alert.from_json(entry.payload)
        try:
            async with asyncio.timeout(self._timeout):
                await notifier.send(alert)
        except (DeliveryError, TimeoutError) as exc:
            retryable = not isinstance(exc, DeliveryError) or exc.retryable
            error = str(exc) or f"{entry.notifier}: no answer within {self._timeout:g}s"
            if not retryable:
                self._done(entry)
                self._metrics.notified(entry.notifier, "rejected")
                log.error(
                    "notification_rejected", notifier=entry.notifier, key=alert.key, error=error
                )
                return True
            fails = self._failures.get(entry.notifier, 0) + 1
            self._failures[entry.notifier] = fails
            delay = min(self._max, self._base * 2 ** (fails - 1))
            # Full jitter in [delay/2, delay]: replicas and notifiers do not retry in step.
            delay *= self._rng.uniform(0.5, 1.0)
            retry_at = self._clock() + delay
            self._blocked_until[entry.notifier] = retry_at
            self._retry_later(entry, retry_at, error)
            self._metrics.notified(entry.notifier, "error")
            log.warning(
                "notification_failed",
                notifier=entry.notifier,
                key=alert.key,
                attempt=entry.attempts + 1,
                retry_in_seconds=round(delay, 2),
                error=error,
            )
            return False
        self._done(entry)
        self._failures.pop(entry.notifier, None)
        self._blocked_until.pop(entry.notifier, None)
        self._metrics.notified(entry.notifier, "ok")
        log.info(
            "notification_sent",
            notifier=entry.notifier,
            key=alert.key,
            kind=alert.event.value,
            attempt=entry.attempts + 1,
        )
        return True
