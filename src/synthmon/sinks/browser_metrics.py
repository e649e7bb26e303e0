"""Metrics of the browser pool's own health (the pool's `PoolEvents`, wired here by
the daemon, so runners never import prometheus_client). Navigation timings and Web
Vitals per step (`synthmon_browser_web_vital`) are per-pair values: they live in the
`PairStore` (sinks/pairstate.py), so a removed pair's series go with it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.sinks.metrics import at_location


class BrowserMetrics:
    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
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
        # With a location label, a child exists only once touched: create it at 0 so
        # rate() sees the first crash (without labels prometheus_client does this itself).
        at_location(self.crashes, self._loc)

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
