"""The alerting side's Prometheus metrics, on the injected registry. Per-pair alert
states live in the daemon's `PairStore` (sinks/pairstate.py), so they vanish with the
pair; an engine built alone (tests) gets a store of its own."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.alerting.policy import AlertState
from synthmon.sinks.pairstate import PairCollector, PairStore


class AlertMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        location: str | None = None,
        pairs: PairStore | None = None,
    ) -> None:
        if pairs is None:
            pairs = PairStore()
            registry.register(PairCollector(pairs, location=location))
        self._pairs = pairs
        self._loc: tuple[str, ...] = (location,) if location else ()
        loc = ("location",) if location else ()
        self.notifications = Counter(
            "synthmon_alert_notifications",
            "Notification delivery attempts by notifier and result (ok|error|rejected|dropped).",
            ("notifier", "result", *loc),
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "synthmon_alert_outbox_depth",
            "Notifications waiting in the outbox for delivery, by notifier.",
            ("notifier", *loc),
            registry=registry,
        )
        self._notifiers: set[str] = set()

    def init_notifier(self, notifier: str) -> None:
        for result in ("ok", "error", "rejected", "dropped"):
            self.notifications.labels(notifier, result, *self._loc)
        self.outbox_depth.labels(notifier, *self._loc).set(0)
        self._notifiers.add(notifier)

    def notified(self, notifier: str, result: str) -> None:
        self.notifications.labels(notifier, result, *self._loc).inc()

    def set_depth(self, depth: Mapping[str, int]) -> None:
        for notifier in self._notifiers | depth.keys():
            self.outbox_depth.labels(notifier, *self._loc).set(depth.get(notifier, 0))

    def set_state(self, alertname: str, journey: str, target: str, state: AlertState) -> None:
        self._pairs.set_alert_state(alertname, journey, target, state.value)

    def set_degraded(self, journey: str, target: str, degraded: bool) -> None:
        self._pairs.set_degraded(journey, target, degraded)

    def forget_pair(self, alertname: str, journey: str, target: str) -> None:
        self._pairs.forget_alert(alertname, journey, target)
