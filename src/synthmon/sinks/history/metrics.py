"""The history's Prometheus metrics: slot outcomes, incidents, the statistics per
window (from the sink's cache, computed off the event loop) and the store's health."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from synthmon.sinks.history.stats import WindowStats

StatsCache = Mapping[tuple[str, str], Mapping[str, WindowStats]]


class HistoryMetrics:
    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self.loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.slots = Counter(
            "synthmon_slots",
            "Scheduled slots by outcome: passed, failed, timed_out, error, skipped, missed.",
            ("journey", "target", "outcome", *loc),
            registry=registry,
        )
        self.incidents = Counter(
            "synthmon_journey_incidents",
            "Incidents (SyntheticJourneyFailed started firing) per journey and target.",
            ("journey", "target", *loc),
            registry=registry,
        )
        self.problems = Counter(
            "synthmon_history_problems",
            "History writes that failed or were dropped: open_failed, write_failed, dropped.",
            ("problem", *loc),
            registry=registry,
        )

    def slot(self, journey: str, target: str, outcome: str, n: int = 1) -> None:
        self.slots.labels(journey, target, outcome, *self.loc).inc(n)

    def init_pair(self, journey: str, target: str, outcomes: tuple[str, ...]) -> None:
        for outcome in outcomes:
            self.slots.labels(journey, target, outcome, *self.loc)
        self.incidents.labels(journey, target, *self.loc)

    def forget_pair(self, journey: str, target: str, outcomes: tuple[str, ...]) -> None:
        for outcome in outcomes:
            with contextlib.suppress(KeyError):
                self.slots.remove(journey, target, outcome, *self.loc)
        with contextlib.suppress(KeyError):
            self.incidents.remove(journey, target, *self.loc)

    def problem(self, what: str) -> None:
        self.problems.labels(what, *self.loc).inc()


class StatsCollector(Collector):
    """Gauges read at scrape time from the statistics cache (no database access)."""

    def __init__(
        self,
        stats: Callable[[], StatsCache],
        health: Callable[[], dict[str, Any]],
        location: str | None,
    ) -> None:
        self._stats = stats
        self._health = health
        self._loc = location

    def collect(self) -> Iterator[GaugeMetricFamily]:
        loc_names = ["location"] if self._loc else []
        loc_values = [self._loc] if self._loc else []
        labels = ["journey", "target", "window", *loc_names]
        families = {
            "availability": GaugeMetricFamily(
                "synthmon_journey_availability_ratio",
                "Passing / counted runs over the window (history; docs/history.md).",
                labels=labels,
            ),
            "mttr": GaugeMetricFamily(
                "synthmon_journey_mttr_seconds",
                "Mean time to repair: mean duration of incidents that ended in the window.",
                labels=labels,
            ),
            "mtbf": GaugeMetricFamily(
                "synthmon_journey_mtbf_seconds",
                "Mean time between failures: mean time from an incident's end to the next start.",
                labels=labels,
            ),
        }
        for (journey, target), windows in sorted(self._stats().items()):
            for window, s in windows.items():
                values = [journey, target, window, *loc_values]
                if s.availability is not None:
                    families["availability"].add_metric(values, s.availability)
                if s.mttr_seconds is not None:
                    families["mttr"].add_metric(values, s.mttr_seconds)
                if s.mtbf_seconds is not None:
                    families["mtbf"].add_metric(values, s.mtbf_seconds)
        yield from families.values()
        health = self._health()
        up = GaugeMetricFamily(
            "synthmon_history_up",
            "1 while the history database accepts writes, 0 when it is broken (see /readyz).",
            labels=loc_names,
        )
        up.add_metric(loc_values, 1.0 if health["ok"] else 0.0)
        yield up
        depth = GaugeMetricFamily(
            "synthmon_history_queue_depth",
            "Records waiting for the history writer.",
            labels=loc_names,
        )
        depth.add_metric(loc_values, float(health["queued"]))
        yield depth
        size = GaugeMetricFamily(
            "synthmon_history_size_bytes", "Size of the history database.", labels=loc_names
        )
        size.add_metric(loc_values, float(health["size_bytes"] or 0))
        yield size
