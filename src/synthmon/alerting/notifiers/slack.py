"""Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): `{"text": ...}`.

The body is only `text` (mrkdwn), which every Slack-compatible receiver renders.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from synthmon.alerting.alert import Alert, AlertName, Event
from synthmon.alerting.notifiers._http import post_json

ICON = {
    Event.TRIGGER: ":red_circle:",
    Event.REMINDER: ":red_circle:",
    Event.RESOLVE: ":white_check_mark:",
}
VERB = {Event.TRIGGER: "FIRING", Event.REMINDER: "STILL FIRING", Event.RESOLVE: "RESOLVED"}


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "never"


def slack_text(alert: Alert) -> str:
    lines = [
        f"{ICON[alert.event]} *{VERB[alert.event]}* [{alert.severity}] {alert.summary}",
    ]
    if alert.event is not Event.RESOLVE:
        if alert.failing_step:
            lines.append(f"*Failing step:* {alert.failing_step}")
        if alert.error_message:
            lines.append(f"*Error:* {alert.error_message}")
        # A degraded alert counts runs that passed too slowly, not failures.
        runs = "Degraded runs" if alert.alertname is AlertName.DEGRADED else "Failed runs"
        lines.append(
            f"*{runs}:* {alert.failed_runs} since {_when(alert.first_failure_at)}; "
            f"last success {_when(alert.last_success_at)}"
        )
        if alert.run_id:
            lines.append(f"*Run:* {alert.run_id} (trace {alert.trace_id})")
        lines += [f"*Artifact:* <{a}>" for a in alert.artifacts]
    links = []
    if alert.runbook_url:
        links.append(f"<{alert.runbook_url}|Runbook>")
    if alert.status_url:
        links.append(f"<{alert.status_url}|Status>")
    if alert.trace_url and alert.event is not Event.RESOLVE:
        links.append(f"<{alert.trace_url}|Trace>")
    if links:
        lines.append(" · ".join(links))
    return "\n".join(lines)


class SlackNotifier:
    name = "slack"

    def __init__(self, url: SecretStr, *, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    def payload(self, alert: Alert) -> dict[str, Any]:
        return {"text": slack_text(alert)}

    async def send(self, alert: Alert) -> None:
        await post_json(
            self._client,
            self.name,
            self._url.get_secret_value(),
            self.payload(alert),
            where="<slack webhook url>",
        )
