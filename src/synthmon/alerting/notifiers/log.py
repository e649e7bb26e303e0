"""The log notifier: always on, so every alert decision is in the logs."""

from __future__ import annotations

import structlog

from synthmon.alerting.alert import Alert

log = structlog.get_logger("synthmon.alerts")


class LogNotifier:
    name = "log"

    async def send(self, alert: Alert) -> None:
        level = log.warning if alert.firing else log.info
        level(
            f"alert_{alert.event.value}",
            alertname=alert.alertname.value,
            journey=alert.journey,
            target=alert.target,
            severity=alert.severity,
            state=alert.state,
            incident=alert.incident,
            failing_step=alert.failing_step,
            error=alert.error_message,
            failed_runs=alert.failed_runs,
            run_id=alert.run_id,
        )
