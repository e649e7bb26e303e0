"""Metrics of the production-safety features: account pool use (per process) and,
through the `PairStore`, which pairs the kill switch pauses. Cleanup failures ride on
RunResult (runners may not touch prometheus_client) and are counted by the store."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from synthmon.sinks.pairstate import PairStore


class SafetyMetrics:
    def __init__(
        self, registry: CollectorRegistry, pairs: PairStore, *, location: str | None = None
    ) -> None:
        self._pairs = pairs
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
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

    def set_paused(self, pairs: Iterable[tuple[str, str, bool]]) -> None:
        """(journey, target, paused) for every pair that exists now."""
        for journey, target, paused in pairs:
            self._pairs.set_paused(journey, target, paused)

    def set_pool(self, pool: str, size: int, in_use: int) -> None:
        self.pool_size.labels(pool, *self._loc).set(size)
        self.pool_in_use.labels(pool, *self._loc).set(in_use)
