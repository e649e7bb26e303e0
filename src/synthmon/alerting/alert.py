"""The `Alert` payload: the same facts for every notifier.

`Alert.to_json()` is also the body of the generic webhook (schema in docs/alerting.md),
and the form alerts take in the outbox, so `from_json(to_json(a)) == a`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1


class AlertName(enum.StrEnum):
    FAILED = "SyntheticJourneyFailed"
    DEGRADED = "SyntheticJourneyDegraded"
    INTERNAL = "SynthmonInternalError"
    HEARTBEAT = "SynthmonHeartbeat"


class Event(enum.StrEnum):
    """Why this notification is sent."""

    TRIGGER = "trigger"  # the alert just started firing
    REMINDER = "reminder"  # still firing (every repeat_interval)
    RESOLVE = "resolve"  # it recovered


@dataclass(frozen=True, slots=True)
class Alert:
    alertname: AlertName
    journey: str
    target: str
    location: str | None
    severity: str  # critical | warning | info
    state: str  # firing | resolved
    event: Event
    incident: int  # counts up per (alertname, journey, target): one incident, one number
    summary: str
    failing_step: str | None = None
    error_message: str | None = None
    reason: str | None = None  # infrastructure reason for SynthmonInternalError
    run_id: str | None = None
    trace_id: str | None = None
    first_failure_at: float | None = None
    failed_runs: int = 0
    last_success_at: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    artifacts: tuple[str, ...] = ()
    description: str = ""
    runbook_url: str | None = None
    status_url: str | None = None
    # The failing run's trace in the tracing UI ([tracing] ui_url).
    trace_url: str | None = None
    tags: tuple[str, ...] = ()
    # Seconds between runs; Alertmanager's endsAt is derived from it.
    interval: float = 60.0

    @property
    def key(self) -> str:
        """Stable across runs, restarts and replicas: one alert, one key."""
        loc = f"@{self.location}" if self.location else ""
        return f"{self.alertname.value}/{self.journey}/{self.target}{loc}"

    @property
    def dedup_key(self) -> str:
        """PagerDuty dedup_key: stable per journey+target(+location) and incident, so a
        reminder never opens a second incident and a later outage opens a new one."""
        digest = hashlib.sha256(f"{self.key}#{self.incident}".encode()).hexdigest()[:16]
        return f"synthmon-{digest}"

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["alertname"] = self.alertname.value
        data["event"] = self.event.value
        data["artifacts"] = list(self.artifacts)
        data["tags"] = list(self.tags)
        return {"version": SCHEMA_VERSION, "key": self.key, **data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in fields}
        kw["alertname"] = AlertName(kw["alertname"])
        kw["event"] = Event(kw["event"])
        kw["artifacts"] = tuple(kw.get("artifacts", ()))
        kw["tags"] = tuple(kw.get("tags", ()))
        return cls(**kw)
