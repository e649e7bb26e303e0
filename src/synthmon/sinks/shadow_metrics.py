"""`synthmon_shadow_mismatches_total{journey,target,compare_to}`: requests `ctx.shadow`
found answered differently by the other target (branch by abstraction).

A custom Collector over one dict: a pair removed from the catalog is gone at the next
scrape by construction, and no series exist before a journey first shadows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric

from synthmon.model import RunResult


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self._location = location
        self._counts: dict[tuple[str, str, str], float] = {}
        self._pairs: set[tuple[str, str]] | None = None
        registry.register(self)

    def set_catalog(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = set(pairs)
        self._counts = {k: v for k, v in self._counts.items() if k[:2] in self._pairs}

    async def emit(self, result: RunResult) -> None:
        self.record(result)

    def record(self, result: RunResult) -> None:
        """An in-memory update: the fan-out calls it inline (no queue hop per run)."""
        key = (result.journey, result.target)
        if not result.shadow_mismatches or (self._pairs is not None and key not in self._pairs):
            return
        for compare_to, n in result.shadow_mismatches:
            k = (*key, compare_to)
            self._counts[k] = self._counts.get(k, 0) + n

    def collect(self) -> Iterator[Metric]:
        labels = ["journey", "target", "compare_to"] + (["location"] if self._location else [])
        family = CounterMetricFamily(
            "synthmon_shadow_mismatches",
            "Requests ctx.shadow sent to both targets that were answered differently.",
            labels=labels,
        )
        loc = [self._location] if self._location else []
        for (journey, target, compare_to), n in sorted(self._counts.items()):
            family.add_metric([journey, target, compare_to, *loc], n)
        yield family
