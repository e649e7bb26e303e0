"""The history's Prometheus metrics: slot outcomes, incidents, the statistics per
window (published by the writer thread after each refresh: a scrape never touches
the database) and the store's health.

The per-pair families (slots, incidents, window figures) are kept in `HistoryPairs`
and written as text for /metrics (`text`, sinks/history/families.py); the few
families of the store's health are prometheus_client metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.sinks.history.families import HistoryCollector, HistoryPairs, HistoryText


class HistoryMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        health: Callable[[], dict[str, Any]],
        location: str | None = None,
    ) -> None:
        self.loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.pairs = HistoryPairs()
        self.collector = HistoryCollector(self.pairs, location=location)
        registry.register(self.collector)
        # What the status server renders these families with (a `TextSource`).
        self.text = HistoryText(self.collector)
        for name, doc, key in (
            (
                "synthmon_history_up",
                "1 while the history database takes writes (see /readyz).",
                "ok",
            ),
            ("synthmon_history_queue_depth", "Records waiting for the history writer.", "queued"),
            ("synthmon_history_size_bytes", "Size of the history database.", "size_bytes"),
        ):
            gauge = Gauge(name, doc, loc, registry=registry)
            child = gauge.labels(*self.loc) if self.loc else gauge
            child.set_function(_reader(health, key))
        self.problems = Counter(
            "synthmon_history_problems",
            "History writes that failed or were dropped: open_failed, write_failed, dropped.",
            ("problem", *loc),
            registry=registry,
        )

    def problem(self, what: str) -> None:
        self.problems.labels(what, *self.loc).inc()


def _reader(health: Callable[[], dict[str, Any]], key: str) -> Callable[[], float]:
    def read() -> float:
        return float(health()[key] or 0)

    return read
