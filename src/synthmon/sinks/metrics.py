"""Prometheus metrics, on a registry passed in (never the global one).

Names follow Prometheus conventions and the blackbox_exporter's precedent
(`probe_success` -> `synthmon_journey_success`). Labels stay low-cardinality: no
URLs, run ids or error texts.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from synthmon._version import __version__
from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Status

# Browser journeys take tens of seconds; the client default stops at 10 s.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RESULTS = tuple(s.value for s in Status)


class Metrics:
    """Every metric synthmon exports. `MetricsSink` feeds the per-run ones; the daemon
    and scheduler call the others through small methods."""

    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self.registry = registry
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        pair = ("journey", "target", *loc)

        def g(name: str, doc: str, labels: tuple[str, ...] = pair) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.success = g(
            "synthmon_journey_success",
            "1 if the last run passed, else 0.",
            ("journey", "target", "severity", *loc),
        )
        self.duration = Histogram(
            "synthmon_journey_duration_seconds",
            "Duration of journey runs.",
            pair,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.runs = Counter(
            "synthmon_journey_runs",
            "Journey runs by result (success|failure|timeout|error).",
            (*pair, "result"),
            registry=registry,
        )
        self.infra_errors = Counter(
            "synthmon_journey_infrastructure_errors",
            "Runs that ended in error for a reason of synthmon's own (browser_crash, ...).",
            (*pair, "reason"),
            registry=registry,
        )
        self.step_duration = Histogram(
            "synthmon_journey_step_duration_seconds",
            "Duration of journey steps.",
            (*pair, "step"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.step_success = g(
            "synthmon_journey_step_success",
            "1 if the step passed in the last run that reached it.",
            (*pair, "step"),
        )
        self.last_run = g(
            "synthmon_journey_last_run_timestamp_seconds", "When the last run finished (epoch)."
        )
        self.last_success = g(
            "synthmon_journey_last_success_timestamp_seconds",
            "When the last passing run finished (epoch).",
        )
        self.consecutive_failures = g(
            "synthmon_journey_consecutive_failures",
            "Failed runs (failure/timeout/journey error) since the last pass.",
        )
        self.retries = Counter(
            "synthmon_journey_retries",
            "Failed attempts that were retried before the run counted (retry-before-counting).",
            pair,
            registry=registry,
        )
        self.skipped = Counter(
            "synthmon_journey_skipped_runs",
            "Scheduled runs that did not run, by reason (overlap|missed|coalesced|concurrency).",
            (*pair, "reason"),
            registry=registry,
        )
        self.info = g(
            "synthmon_journey_info",
            "Journey metadata, always 1: join on journey.",
            ("journey", "severity", "kind", "interval_seconds", "schedule", "tags", *loc),
        )
        self.interval = g(
            "synthmon_journey_interval_seconds",
            "How often the journey runs (0 for cron schedules): for staleness alerts.",
            ("journey", *loc),
        )
        self.load_errors = g(
            "synthmon_journey_load_errors",
            "Problems found when loading a journey file.",
            ("file", *loc),
        )
        self.journeys_loaded = g(
            "synthmon_journeys_loaded", "Journeys loaded from the journeys folder.", loc
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
            loc,
        )
        self.in_flight = g("synthmon_runs_in_flight", "Journey runs in progress.", loc)
        self.sink_problems = Counter(
            "synthmon_sink_problems",
            "Results a sink dropped, timed out on or failed on.",
            ("sink", "problem", *loc),
            registry=registry,
        )
        build = Gauge(
            "synthmon_build_info",
            "synthmon version, always 1.",
            ("version", "python"),
            registry=registry,
        )
        build.labels(__version__, platform.python_version()).set(1)

        self._pairs: dict[tuple[str, str], Journey] = {}
        self._steps: dict[tuple[str, str], set[str]] = {}
        self._reasons: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._files: set[str] = set()
        self._children: dict[tuple[str, str], _PairChildren] = {}

    # -- catalog -------------------------------------------------------------------

    def set_catalog(self, pairs: Iterable[tuple[Journey, str]]) -> None:
        """Declare the (journey, target) pairs that exist now: initialises their
        counters at 0 and removes every series of pairs that disappeared."""
        new = {(j.name, t): j for j, t in pairs}
        for key in [k for k in self._pairs if k not in new]:
            self._remove_pair(key, self._pairs.pop(key))
        for key, j in new.items():
            old = self._pairs.get(key)
            if old is not None and old.severity != j.severity:
                self._remove_pair(key, old)
            self._pairs[key] = j
            for result in RESULTS:
                self.runs.labels(*key, *self._loc, result)
        self.info.clear()
        self.interval.clear()
        for j in {j.name: j for j in new.values()}.values():
            self.info.labels(
                j.name,
                j.severity.value,
                j.kind.value,
                f"{j.interval:g}" if j.interval else "",
                j.schedule,
                ",".join(j.tags),
                *self._loc,
            ).set(1)
            self.interval.labels(j.name, *self._loc).set(j.interval or 0)
        at_location(self.journeys_loaded, self._loc).set(len({j for j, _ in new}))

    def _remove_pair(self, key: tuple[str, str], j: Journey) -> None:
        self._children.pop(key, None)
        labels = (*key, *self._loc)
        for metric in (
            self.retries,
            self.duration,
            self.last_run,
            self.last_success,
            self.consecutive_failures,
        ):
            _remove(metric, labels)
        _remove(self.success, (key[0], key[1], j.severity.value, *self._loc))
        for result in RESULTS:
            _remove(self.runs, (*labels, result))
        for step in self._steps.pop(key, set()):
            _remove(self.step_duration, (*labels, step))
            _remove(self.step_success, (*labels, step))
        for family, reason in self._reasons.pop(key, set()):
            _remove(getattr(self, family), (*labels, reason))

    def set_load_problems(self, files: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for f in files:
            counts[f] = counts.get(f, 0) + 1
        for f in self._files - counts.keys():
            _remove(self.load_errors, (f, *self._loc))
        for f, n in counts.items():
            self.load_errors.labels(f, *self._loc).set(n)
        self._files = set(counts)

    # -- scheduler and daemon events --------------------------------------------

    def skipped_run(self, journey: str, target: str, reason: str, n: int = 1) -> None:
        self._reasons.setdefault((journey, target), set()).add(("skipped", reason))
        self.skipped.labels(journey, target, *self._loc, reason).inc(n)

    def observe_lag(self, seconds: float) -> None:
        at_location(self.scheduler_lag, self._loc).observe(max(seconds, 0.0))

    def set_loop_lag(self, seconds: float) -> None:
        at_location(self.loop_lag, self._loc).set(seconds)

    def set_in_flight(self, n: int) -> None:
        at_location(self.in_flight, self._loc).set(n)

    def sink_problem(self, sink: str, problem: str) -> None:
        self.sink_problems.labels(sink, problem, *self._loc).inc()

    # -- per run -------------------------------------------------------------------

    def observe(self, result: RunResult) -> None:
        key = (result.journey, result.target)
        c = self._children.get(key)
        if c is None:
            if key not in self._pairs:
                # A run that finished after its journey was removed: recording it
                # would resurrect series that set_catalog just deleted.
                return
            c = self._children[key] = self._make_children(key)
        passed = result.status is Status.SUCCESS
        finished = result.started_at + result.duration
        if result.retried:
            c.retries.inc()
        else:
            # An attempt a retry follows is not the run's outcome yet: flipping the
            # gauge for 5 s would page anyone alerting on success == 0 for a blip.
            c.success.set(1 if passed else 0)
        c.duration.observe(result.duration)
        c.runs[result.status].inc()
        c.last_run.set(finished)
        if passed:
            c.last_success.set(finished)
            c.consecutive_failures.set(0)
        elif result.is_infrastructure_error:
            assert result.reason is not None
            self._reasons.setdefault(key, set()).add(("infra_errors", result.reason))
            self.infra_errors.labels(*key, *self._loc, result.reason).inc()
        elif not result.retried:
            # An attempt followed by a retry is not a failed run (yet): counting it would
            # make the shipped "failing for 2 runs" rule fire on one confirmed failure.
            c.consecutive_failures.inc()
        labels = (*key, *self._loc)
        steps = self._steps.setdefault(key, set())
        for step in result.steps:
            steps.add(step.name)
            self.step_duration.labels(*labels, step.name).observe(step.duration)
            self.step_success.labels(*labels, step.name).set(
                1 if step.status is Status.SUCCESS else 0
            )

    def _make_children(self, key: tuple[str, str]) -> _PairChildren:
        # labels() hashes and locks on every call; a run touches six series, so
        # resolve them once per pair.
        labels = (*key, *self._loc)
        j = self._pairs.get(key)
        severity = j.severity.value if j is not None else "unknown"
        return _PairChildren(
            success=self.success.labels(key[0], key[1], severity, *self._loc),
            duration=self.duration.labels(*labels),
            runs={s: self.runs.labels(*labels, s.value) for s in Status},
            last_run=self.last_run.labels(*labels),
            last_success=self.last_success.labels(*labels),
            consecutive_failures=self.consecutive_failures.labels(*labels),
            retries=self.retries.labels(*labels),
        )


@dataclass(slots=True)
class _PairChildren:
    success: Any
    duration: Any
    runs: dict[Status, Any]
    last_run: Any
    last_success: Any
    consecutive_failures: Any
    retries: Any


class MetricsSink:
    """The sink face of `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def emit(self, result: RunResult) -> None:
        self.metrics.observe(result)


def at_location(metric: Any, loc: tuple[str, ...]) -> Any:
    # prometheus_client refuses .labels() on a metric without labels.
    return metric.labels(*loc) if loc else metric


def _remove(metric: Gauge | Counter | Histogram, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
