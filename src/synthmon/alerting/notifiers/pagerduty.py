"""PagerDuty Events API v2: trigger / resolve with a stable `dedup_key`.

A reminder is another trigger with the same dedup_key: PagerDuty appends it to the open
incident instead of opening a second one.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from synthmon.alerting.alert import Alert, Event
from synthmon.alerting.notifiers._http import post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# PagerDuty knows critical, error, warning and info.
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


class PagerDutyNotifier:
    name = "pagerduty"

    def __init__(
        self, routing_key: SecretStr, *, client: httpx.AsyncClient, url: str = EVENTS_URL
    ) -> None:
        self._routing_key = routing_key
        self._client = client
        self.url = url

    def payload(self, alert: Alert) -> dict[str, Any]:
        key = self._routing_key.get_secret_value()
        if alert.event is Event.RESOLVE:
            return {"routing_key": key, "event_action": "resolve", "dedup_key": alert.dedup_key}
        details = {
            "journey": alert.journey,
            "target": alert.target,
            "location": alert.location,
            "failing_step": alert.failing_step,
            "error": alert.error_message,
            "run_id": alert.run_id,
            "trace_id": alert.trace_id,
            "failed_runs": alert.failed_runs,
            "first_failure_at": alert.first_failure_at,
            "last_success_at": alert.last_success_at,
            "description": alert.description,
            "runbook_url": alert.runbook_url,
            "artifacts": list(alert.artifacts),
        }
        body: dict[str, Any] = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": alert.dedup_key,
            "payload": {
                "summary": alert.summary[:1024],
                "source": f"{alert.journey}@{alert.target}"
                + (f"/{alert.location}" if alert.location else ""),
                "severity": SEVERITY.get(alert.severity, "error"),
                "component": alert.target,
                "group": alert.journey,
                "class": alert.alertname.value,
                "custom_details": {k: v for k, v in details.items() if v not in (None, "", [])},
            },
            "client": "synthmon",
        }
        links = []
        if alert.status_url:
            body["client_url"] = alert.status_url
            links.append({"href": alert.status_url, "text": "synthmon status"})
        if alert.runbook_url:
            links.append({"href": alert.runbook_url, "text": "Runbook"})
        if alert.trace_url:
            links.append({"href": alert.trace_url, "text": "Trace"})
        links += [{"href": a, "text": "Artifact"} for a in alert.artifacts]
        if links:
            body["links"] = links
        return body

    async def send(self, alert: Alert) -> None:
        await post_json(self._client, self.name, self.url, self.payload(alert))
