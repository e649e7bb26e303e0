"""Metrics of the worker processes (`[scheduler] workers`, docs/workers.md): the
pool's `WorkerEvents`, wired by the daemon, so runners never import prometheus_client.
Created only when workers are configured: a daemon without them exports none."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from synthmon.sinks.metrics import at_location

# The hand-off is a local socket write and the worker's loop picking the run up:
# milliseconds when the worker keeps up, up to seconds when its core is full.
HANDOFF_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class WorkerMetrics:
    def __init__(
        self, registry: CollectorRegistry, *, size: int, location: str | None = None
    ) -> None:
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.configured = Gauge(
            "synthmon_workers",
            "Worker processes configured ([scheduler] workers).",
            loc,
            registry=registry,
        )
        self.up = Gauge(
            "synthmon_workers_up",
            "Worker processes running and taking HTTP runs now.",
            loc,
            registry=registry,
        )
        self.restarts = Counter(
            "synthmon_worker_restarts",
            "Worker processes started again, by reason (exited|stuck|start_failed); "
            "the runs they had in flight ended as error worker_lost.",
            ("reason", *loc),
            registry=registry,
        )
        self.handoff = Histogram(
            "synthmon_worker_handoff_seconds",
            "From the daemon handing an HTTP run to a worker to the worker starting it "
            "(add it to synthmon_scheduler_lag_seconds for the start lag in a worker).",
            loc,
            buckets=HANDOFF_BUCKETS,
            registry=registry,
        )
        at_location(self.configured, self._loc).set(size)
        for reason in ("exited", "stuck", "start_failed"):
            self.restarts.labels(reason, *self._loc)

    # -- WorkerEvents ----------------------------------------------------------------

    def workers_up(self, count: int) -> None:
        at_location(self.up, self._loc).set(count)

    def worker_restarted(self, reason: str) -> None:
        self.restarts.labels(reason, *self._loc).inc()

    def handed_off(self, seconds: float) -> None:
        at_location(self.handoff, self._loc).observe(seconds)
