"""Metrics of the production-safety features: paused pairs, cleanup failures and
account pool use. A sink for the per-run part (cleanup failures ride on RunResult,
since runners may not touch prometheus_client)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.model import RunResult


class SafetyMetrics:
    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.paused = Gauge(
            "synthmon_journey_paused",
            "1 while the pair is paused by the kill switch (synthmon pause), else 0.",
            ("journey", "target", *loc),
            registry=registry,
        )
        self.cleanup_failures = Counter(
            "synthmon_journey_cleanup_failures",
            "Cleanups (ctx.defer / cleanup=) that raised or ran out of time.",
            ("journey", "target", *loc),
            registry=registry,
        )
        self.pool_size = Gauge(
            "synthmon_account_pool_size",
            "Synthetic accounts configured in the pool.",
            ("pool", *loc),
            registry=registry,
        )
        self.pool_in_use = Gauge(
            "synthmon_account_pool_in_use",
            "Synthetic accounts of the pool leased by a run right now.",
            ("pool", *loc),
            registry=registry,
        )
        # Pairs with a cleanup_failures series.
        self._ran: set[tuple[str, str]] = set()
        # Pairs that exist now (None until the first set_paused).
        self._current: set[tuple[str, str]] | None = None

    def set_paused(self, pairs: Iterable[tuple[str, str, bool]]) -> None:
        """(journey, target, paused) for every pair that exists now. Series of pairs
        that no longer exist are removed, not left stale."""
        self.paused.clear()
        current = set()
        for journey, target, paused in pairs:
            current.add((journey, target))
            self.paused.labels(journey, target, *self._loc).set(1 if paused else 0)
        for gone in self._ran - current:
            with contextlib.suppress(KeyError):
                self.cleanup_failures.remove(*gone, *self._loc)
        self._ran &= current
        self._current = current

    def set_pool(self, pool: str, size: int, in_use: int) -> None:
        self.pool_size.labels(pool, *self._loc).set(size)
        self.pool_in_use.labels(pool, *self._loc).set(in_use)

    async def emit(self, result: RunResult) -> None:
        key = (result.journey, result.target)
        if self._current is not None and key not in self._current:
            return  # finished after its journey was removed: do not resurrect its series
        self._ran.add(key)
        labels = (result.journey, result.target, *self._loc)
        counter = self.cleanup_failures.labels(*labels)  # exists at 0 once the pair ran
        if result.cleanup_failures:
            counter.inc(result.cleanup_failures)
