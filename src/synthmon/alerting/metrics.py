"""The alerting side's Prometheus metrics, on the injected registry."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from synthmon.alerting.policy import AlertState

STATE_VALUE = {AlertState.OK: 0, AlertState.PENDING: 1, AlertState.FIRING: 2}


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
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
        self.state = Gauge(
            "synthmon_alert_state",
            "Alert state per journey and target: 0 ok, 1 pending, 2 firing.",
            ("alertname", "journey", "target", *loc),
            registry=registry,
        )
        self.degraded = Gauge(
            "synthmon_journey_degraded",
            "1 if the last passing run took longer than the journey's degraded_after budget.",
            ("journey", "target", *loc),
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
        self.state.labels(alertname, journey, target, *self._loc).set(STATE_VALUE[state])

    def set_degraded(self, journey: str, target: str, degraded: bool) -> None:
        self.degraded.labels(journey, target, *self._loc).set(1 if degraded else 0)

    def forget_pair(self, alertname: str, journey: str, target: str) -> None:
        for metric, labels in (
            (self.state, (alertname, journey, target, *self._loc)),
            (self.degraded, (journey, target, *self._loc)),
        ):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
