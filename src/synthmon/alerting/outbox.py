"""The outbox: notifications are written to SQLite first and delivered by a background
task, so an alert decision never waits on a receiver and survives a restart.

Delivery per notifier is in order: when a notifier fails, its later notifications wait
for the same backoff (exponential, with jitter, capped), so a resolve never overtakes
its trigger. Retryable failures are retried forever (the depth gauge and the error
counter show it); a receiver that rejects the payload itself (4xx) gets it dropped
with an error log, since sending the same bytes again cannot succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping

import structlog

from synthmon.alerting.alert import Alert
from synthmon.alerting.metrics import AlertMetrics
from synthmon.alerting.notifiers import Notifier
from synthmon.alerting.store import AlertStore, OutboxEntry
from synthmon.errors import DeliveryError

log = structlog.get_logger("synthmon.alerting.outbox")


class Outbox:
    def __init__(
        self,
        store: AlertStore,
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
        for name in self._notifiers:
            metrics.init_notifier(name)
        metrics.set_depth(store.depth())

    def enqueue(self, notifier: str, alert: Alert, *, coalesce: bool = False) -> None:
        """Persist one notification. `coalesce`: replace an undelivered one for the same
        alert (Alertmanager only needs the latest state)."""
        key = f"{notifier}|{alert.key}" if coalesce else None
        self._store.enqueue(notifier, alert.to_json(), self._clock(), key)
        self._metrics.set_depth(self._store.depth())
        self._wake.set()

    def depth(self) -> int:
        return sum(self._store.depth().values())

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

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                # A bug here must not end delivery for good.
                log.exception("outbox_loop_failed")
            self._wake.clear()
            now = self._clock()
            nxt = self._store.next_due()
            waits = [t for t in self._blocked_until.values() if t > now]
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
        for entry in self._store.due(now, blocked):
            if entry.notifier in blocked:
                continue  # blocked by an earlier entry's failure in this pass
            if await self._deliver(entry):
                delivered += 1
            else:
                blocked.add(entry.notifier)
        self._metrics.set_depth(self._store.depth())
        return delivered

    async def _deliver(self, entry: OutboxEntry) -> bool:
        notifier = self._notifiers.get(entry.notifier)
        if notifier is None:
            log.error(
                "outbox_unknown_notifier",
                notifier=entry.notifier,
                hint="the notifier was removed from [alerting] config; notification dropped",
            )
            self._store.delivered(entry.id)
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
                self._store.delivered(entry.id)
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
            self._store.failed(entry.id, retry_at, error)
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
        self._store.delivered(entry.id)
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
