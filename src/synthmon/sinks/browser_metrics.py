"""Metrics of browser journeys: navigation timings per step (a sink) and the browser
pool's own health (the pool's `PoolEvents`, wired here by the daemon, so runners
never import prometheus_client)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from synthmon.model import RunResult
from synthmon.sinks.metrics import at_location

NAVIGATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)


class BrowserMetrics:
    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self._pairs: set[tuple[str, str]] | None = None
        self._series: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.navigation = Histogram(
            "synthmon_browser_navigation_seconds",
            "Navigation Timing of browser steps that loaded a page, seconds since the "
            "navigation started, by phase (ttfb|dom_content_loaded|load).",
            ("journey", "target", "step", "phase", *loc),
            buckets=NAVIGATION_BUCKETS,
            registry=registry,
        )
        self.launches = Counter(
            "synthmon_browser_launches",
            "Browser launches by result (ok|failed).",
            ("result", *loc),
            registry=registry,
        )
        self.crashes = Counter(
            "synthmon_browser_crashes",
            "Times Chromium died under synthmon (runs in flight end as error browser_crash).",
            loc,
            registry=registry,
        )
        self.recycles = Counter(
            "synthmon_browser_recycles",
            "Browser relaunches by reason (runs|rss|driver|unresponsive).",
            ("reason", *loc),
            registry=registry,
        )
        self.contexts_in_use = Gauge(
            "synthmon_browser_contexts_in_use",
            "Browser runs holding a context now.",
            loc,
            registry=registry,
        )
        self.waiting = Gauge(
            "synthmon_browser_waiting_runs",
            "Browser runs waiting for a browser slot.",
            loc,
            registry=registry,
        )
        self.rss = Gauge(
            "synthmon_browser_rss_bytes",
            "Resident memory of the browser's process tree after the last run.",
            loc,
            registry=registry,
        )
        self.artifact_failures = Counter(
            "synthmon_browser_artifact_failures",
            "Failure artifacts that could not be written (disk full, a page refusing a "
            "screenshot), by artifact; the run's result is recorded regardless.",
            ("artifact", *loc),
            registry=registry,
        )
        for artifact in ("screenshot", "trace", "html", "console", "network"):
            self.artifact_failures.labels(artifact, *self._loc)
        for result in ("ok", "failed"):
            self.launches.labels(result, *self._loc)
        for reason in ("runs", "rss", "driver", "unresponsive"):
            self.recycles.labels(reason, *self._loc)

    # -- PoolEvents ------------------------------------------------------------------

    def count(self, event: str, reason: str = "") -> None:
        if event == "launch":
            self.launches.labels(reason, *self._loc).inc()
        elif event == "crash":
            at_location(self.crashes, self._loc).inc()
        elif event == "recycle":
            self.recycles.labels(reason, *self._loc).inc()
        elif event == "artifact_failed":
            self.artifact_failures.labels(reason, *self._loc).inc()

    def gauge(self, name: str, value: float) -> None:
        metric = {
            "contexts_in_use": self.contexts_in_use,
            "waiting_runs": self.waiting,
            "rss_bytes": self.rss,
        }.get(name)
        if metric is not None:
            at_location(metric, self._loc).set(value)

    # -- sink ------------------------------------------------------------------------

    async def emit(self, result: RunResult) -> None:
        key = (result.journey, result.target)
        if self._pairs is not None and key not in self._pairs:
            return  # finished after its journey was removed: do not resurrect series
        for step in result.steps:
            for phase, seconds in step.timings:
                self._series.setdefault(key, set()).add((step.name, phase))
                self.navigation.labels(
                    result.journey, result.target, step.name, phase, *self._loc
                ).observe(seconds)

    def set_catalog(self, pairs: set[tuple[str, str]]) -> None:
        """The (journey, target) pairs that exist now; series of the others go."""
        self._pairs = set(pairs)
        for key in [k for k in self._series if k not in self._pairs]:
            for step, phase in self._series.pop(key):
                with contextlib.suppress(KeyError):
                    self.navigation.remove(key[0], key[1], step, phase, *self._loc)
