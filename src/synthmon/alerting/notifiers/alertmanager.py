"""Alertmanager v2: `POST /api/v2/alerts` to every configured Alertmanager.

Alertmanager resolves an alert by itself once `endsAt` passes, so while firing the
engine re-sends at least every `resend_interval` with endsAt = now + factor x
max(interval, 60 s); a recovery is sent with endsAt = the recovery time and repeated
for a while, in case one delivery was lost. Labels are deterministic (no run ids, no
instance names), so several synthmon replicas posting the same alert collapse into one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from synthmon.alerting.alert import Alert, AlertName
from synthmon.alerting.notifiers._http import post_json
from synthmon.errors import DeliveryError


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerNotifier:
    name = "alertmanager"

    def __init__(
        self,
        urls: Sequence[str],
        *,
        client: httpx.AsyncClient,
        ends_at_factor: float = 4.0,
        min_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self._client = client
        self._factor = ends_at_factor
        self._min_interval = min_interval
        self._clock = clock

    def payload(self, alert: Alert) -> dict[str, Any]:
        """One Alertmanager v2 postable alert for `alert`."""
        now = self._clock()
        labels = {"alertname": alert.alertname.value, "severity": alert.severity}
        if alert.alertname is not AlertName.HEARTBEAT:
            labels |= {"journey": alert.journey, "target": alert.target}
        if alert.location:
            labels["location"] = alert.location
        annotations = {"summary": alert.summary}
        optional = {
            "description": alert.description,
            "failing_step": alert.failing_step,
            "error": alert.error_message,
            "reason": alert.reason,
            "run_id": alert.run_id,
            "trace_id": alert.trace_id,
            "runbook_url": alert.runbook_url,
            "status_url": alert.status_url,
            "trace_url": alert.trace_url,
            "first_failure_at": rfc3339(alert.first_failure_at) if alert.first_failure_at else None,
            "last_success_at": rfc3339(alert.last_success_at) if alert.last_success_at else None,
            "failed_runs": str(alert.failed_runs) if alert.failed_runs else None,
            "artifacts": " ".join(alert.artifacts) or None,
        }
        annotations |= {k: v for k, v in optional.items() if v}
        if alert.firing:
            ends = now + self._factor * max(alert.interval, self._min_interval)
        else:
            ends = alert.resolved_at or now
        body: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(alert.fired_at or alert.first_failure_at or now),
            "endsAt": rfc3339(ends),
        }
        if alert.status_url:
            body["generatorURL"] = alert.status_url
        return body

    async def send(self, alert: Alert) -> None:
        body = [self.payload(alert)]
        # Every Alertmanager of the cluster gets it (they deduplicate among themselves),
        # concurrently: one black-holed instance must not hold back the others.
        results = await asyncio.gather(
            *(post_json(self._client, self.name, f"{u}/api/v2/alerts", body) for u in self.urls),
            return_exceptions=True,
        )
        problems = [str(r) for r in results if isinstance(r, DeliveryError)]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, DeliveryError):
                raise r
        if problems:
            # Re-sending to the ones that took it is harmless: same labels, same alert.
            raise DeliveryError(self.name, "; ".join(problems))
