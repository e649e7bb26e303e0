"""The history's Prometheus metrics: slot outcomes, incidents, the statistics per
window (set by the writer thread after each refresh: a scrape never touches the
database) and the store's health."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.sinks.history.stats import WindowStats

StatsCache = Mapping[tuple[str, str], Mapping[str, WindowStats]]


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
        window = ("journey", "target", "window", *loc)
        self.availability = Gauge(
            "synthmon_journey_availability_ratio",
            "Passing / counted runs over the window (history; docs/history.md).",
            window,
            registry=registry,
        )
        self.mttr = Gauge(
            "synthmon_journey_mttr_seconds",
            "Mean time to repair: mean duration of incidents that ended in the window.",
            window,
            registry=registry,
        )
        self.mtbf = Gauge(
            "synthmon_journey_mtbf_seconds",
            "Mean time between failures: mean time from an incident's end to the next start.",
            window,
            registry=registry,
        )
        self._published: set[tuple[str, ...]] = set()
        self._slot_children: dict[tuple[str, str, str], Any] = {}
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
        # Once per run, on the event loop: the child is looked up in a plain dict
        # (labels() builds a key and takes a lock each time).
        child = self._slot_children.get((journey, target, outcome))
        if child is None:
            child = self.slots.labels(journey, target, outcome, *self.loc)
            self._slot_children[(journey, target, outcome)] = child
        child.inc(n)

    def init_pair(self, journey: str, target: str, outcomes: tuple[str, ...]) -> None:
        for outcome in outcomes:
            self._slot_children[(journey, target, outcome)] = self.slots.labels(
                journey, target, outcome, *self.loc
            )
        self.incidents.labels(journey, target, *self.loc)

    def forget_pair(self, journey: str, target: str, outcomes: tuple[str, ...]) -> None:
        for outcome in outcomes:
            self._slot_children.pop((journey, target, outcome), None)
            with contextlib.suppress(KeyError):
                self.slots.remove(journey, target, outcome, *self.loc)
        with contextlib.suppress(KeyError):
            self.incidents.remove(journey, target, *self.loc)

    def problem(self, what: str) -> None:
        self.problems.labels(what, *self.loc).inc()

    def publish(self, stats: StatsCache) -> None:
        """Set the window gauges from freshly computed statistics (any thread); series
        of pairs that are gone, or of figures that became unknown, are removed."""
        gauges = {"availability": self.availability, "mttr": self.mttr, "mtbf": self.mtbf}
        seen: set[tuple[str, ...]] = set()
        for (journey, target), windows in stats.items():
            for window, s in windows.items():
                labels = (journey, target, window, *self.loc)
                values = {
                    "availability": s.availability,
                    "mttr": s.mttr_seconds,
                    "mtbf": s.mtbf_seconds,
                }
                for name, value in values.items():
                    if value is not None:
                        gauges[name].labels(*labels).set(value)
                        seen.add((name, *labels))
        for key in self._published - seen:
            with contextlib.suppress(KeyError):
                gauges[key[0]].remove(*key[1:])
        self._published = seen


def _reader(health: Callable[[], dict[str, Any]], key: str) -> Callable[[], float]:
    def read() -> float:
        return float(health()[key] or 0)

    return read
