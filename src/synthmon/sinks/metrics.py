"""Prometheus metrics, on a registry passed in (never the global one).

Names follow Prometheus conventions and the blackbox_exporter's precedent
(`probe_success` -> `synthmon_journey_success`). Labels stay low-cardinality: no
URLs, run ids or error texts.

Per (journey, target) values live in one `PairStore`, rendered by `PairCollector` at
scrape time (sinks/pairstate.py); this module adds the per-process metrics. The
series budget is in docs/metrics.md.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from synthmon._version import __version__
from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult
from synthmon.sinks.pairstate import PairCollector, PairStore
from synthmon.sinks.pairtext import PairText

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric synthmon exports. The per-pair ones are `pairs` (a `PairStore`, fed
    by `MetricsSink`); the daemon and scheduler call the others through small methods."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        location: str | None = None,
        step_histograms: bool = False,
    ) -> None:
        self.registry = registry
        self.pairs = PairStore(step_histograms=step_histograms)
        self.collector = PairCollector(self.pairs, location=location)
        registry.register(self.collector)
        # The same families as text, for the status server (sinks/pairtext.py).
        self.pair_text = PairText(self.collector)
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()

        def g(name: str, doc: str, labels: tuple[str, ...] = loc) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.load_errors = g(
            "synthmon_journey_load_errors",
            "Problems found when loading a journey file.",
            ("file", *loc),
        )
        self.scheduler_lag = Histogram(
            "synthmon_scheduler_lag_seconds",
            "How late runs start against their schedule.",
            loc,
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.loop_lag = g(
            "synthmon_event_loop_lag_seconds",
            "How late the event loop woke up in the last check (a blocking journey shows here).",
        )
        self.in_flight = g("synthmon_runs_in_flight", "Journey runs in progress.")
        self.sink_problems = Counter(
            "synthmon_sink_problems",
            "Results a sink dropped, timed out on or failed on.",
            ("sink", "problem", *loc),
            registry=registry,
        )
        self.sink_queue_depth = Gauge(
            "synthmon_sink_queue_depth",
            "Results queued for a sink that its worker has not taken yet (inline sinks have none).",
            ("sink", *loc),
            registry=registry,
        )
        build = Gauge(
            "synthmon_build_info",
            "synthmon version, always 1.",
            ("version", "python"),
            registry=registry,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self._files: set[str] = set()
        self._lag = at_location(self.scheduler_lag, self._loc)
        self._in_flight = at_location(self.in_flight, self._loc)

    # -- catalog -------------------------------------------------------------------

    def set_catalog(self, pairs: Iterable[tuple[Journey, str]]) -> None:
        """Declare the (journey, target) pairs that exist now: their series start at 0;
        every series of a pair that disappeared is gone from the next scrape."""
        self.pairs.set_catalog(pairs)

    def set_load_problems(self, files: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for f in files:
            counts[f] = counts.get(f, 0) + 1
        for f in self._files - counts.keys():
            self.load_errors.remove(f, *self._loc)
        for f, n in counts.items():
            self.load_errors.labels(f, *self._loc).set(n)
        self._files = set(counts)

    # -- scheduler and daemon events --------------------------------------------

    def skipped_run(self, journey: str, target: str, reason: str, n: int = 1) -> None:
        self.pairs.skipped_run(journey, target, reason, n)

    def observe_lag(self, seconds: float) -> None:
        self._lag.observe(max(seconds, 0.0))

    def set_loop_lag(self, seconds: float) -> None:
        at_location(self.loop_lag, self._loc).set(seconds)

    def set_in_flight(self, n: int) -> None:
        self._in_flight.set(n)

    def sink_problem(self, sink: str, problem: str) -> None:
        self.sink_problems.labels(sink, problem, *self._loc).inc()

    def watch_sink_queues(self, depth: Callable[[], Mapping[str, int]]) -> None:
        """Export `depth()` ({sink: queued results}, the fan-out's) at scrape time:
        a backed-up sink shows before it starts dropping."""
        for sink in depth():
            self.sink_queue_depth.labels(sink, *self._loc).set_function(_reader(depth, sink))


class MetricsSink:
    """The sink face of `Metrics`: an in-memory update, so the fan-out calls it inline
    (`record`) rather than through a queue and a worker task."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def record(self, result: RunResult) -> None:
        self.metrics.pairs.record(result)

    async def emit(self, result: RunResult) -> None:
        self.record(result)


def _reader(depth: Callable[[], Mapping[str, int]], sink: str) -> Callable[[], float]:
    return lambda: float(depth().get(sink, 0))


def at_location(metric: Any, loc: tuple[str, ...]) -> Any:
    # prometheus_client refuses .labels() on a metric without labels.
    return metric.labels(*loc) if loc else metric
