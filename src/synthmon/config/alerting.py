"""The `[alerting]` config section. Validation only; imported by `synthmon.config.settings`.

    [alerting]
    repeat_interval = "1h"
    [alerting.routes]
    critical = ["pagerduty", "alertmanager"]
    warning = ["slack", "alertmanager"]
    [alerting.tag_routes]
    checkout = ["webhook"]
    [alerting.alertmanager]
    urls = ["http://am-1:9093", "http://am-2:9093"]
    [alerting.pagerduty]
    routing_key = { env = "PAGERDUTY_ROUTING_KEY" }
    [alerting.journeys.browse_catalog]
    consecutive = 3
    [[alerting.maintenance]]
    journeys = ["api_checkout"]
    cron = "0 3 * * SUN"
    duration = "1h"

Every key is described in docs/alerting.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from synthmon.config.cron import validate_cron
from synthmon.config.durations import parse_duration
from synthmon.config.keys import key_problems
from synthmon.config.secrets import SecretRef

Duration = Annotated[float, BeforeValidator(parse_duration)]

# Notifier names a route may use (besides "log", which is always on).
NOTIFIERS = ("alertmanager", "pagerduty", "slack", "webhook")
# Used when [alerting.routes] does not name a severity; notifiers that are not
# configured are left out.
# Critical pages and is also posted to chat, so the team sees what the on-call sees.
DEFAULT_ROUTES: dict[str, list[str]] = {
    "critical": ["pagerduty", "alertmanager", "slack", "webhook"],
    "warning": ["slack", "webhook", "alertmanager"],
    "info": [],
}


class PolicyOverride(BaseModel):
    """The keys accepted in `@journey(alert={...})`, `[alerting.severity.<sev>]` and
    `[alerting.journeys.<name>]`. Unset keys keep the value from the level below."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    consecutive: int | None = Field(default=None, ge=0)
    failures: int | None = Field(default=None, ge=0)
    window: int | None = Field(default=None, ge=0)
    resolve_passes: int | None = Field(default=None, ge=1)
    notify: bool | None = None
    retries: int | None = Field(default=None, ge=0, le=3)
    rechecks: int | None = Field(default=None, ge=0, le=5)
    retry_delay: Annotated[float, BeforeValidator(parse_duration)] | None = Field(
        default=None, ge=0
    )
    alert_on_degraded: bool | None = None

    @model_validator(mode="after")
    def _window_holds_failures(self) -> PolicyOverride:
        if self.failures and self.window is not None and self.window < self.failures:
            raise ValueError(f"window ({self.window}) must be >= failures ({self.failures})")
        return self


def parse_override(data: Mapping[str, Any], where: str) -> PolicyOverride:
    """Validate override keys; ValueError names `where` and each bad key."""
    try:
        return PolicyOverride.model_validate(dict(data))
    except ValidationError as exc:
        raise ValueError(
            f"{where}: invalid alert policy ({key_problems(exc, 'alert')}); valid keys: "
            f"{', '.join(PolicyOverride.model_fields)}"
        ) from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertmanagerConfig(_Section):
    # Every Alertmanager of the cluster, not a load balancer in front of them.
    urls: list[str] = Field(min_length=1)


class PagerDutyConfig(_Section):
    routing_key: SecretRef
    url: str = "https://events.pagerduty.com/v2/enqueue"


class WebhookConfig(_Section):
    # The URL often carries the secret (Slack's does): loaded like every secret, from
    # { env = "NAME" } or { file = "/path" }, and kept out of logs and errors.
    url: SecretRef


class MaintenanceWindow(_Section):
    """While active, runs continue and are recorded but no notifications go out.
    Empty journeys/targets/tags match everything. Either start/end or cron+duration."""

    journeys: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: Duration | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        if self.cron is not None:
            if self.duration is None or self.start is not None or self.end is not None:
                raise ValueError("a cron window needs duration= and no start=/end=")
            validate_cron(self.cron)
        elif self.start is None or self.end is None:
            raise ValueError("give start= and end= (RFC 3339), or cron= and duration=")
        elif self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AlertingConfig(_Section):
    routes: dict[str, list[str]] = Field(default_factory=dict)
    # Extra notifiers for journeys carrying a tag, on top of the severity route.
    tag_routes: dict[str, list[str]] = Field(default_factory=dict)
    # Reminders from direct notifiers (PagerDuty, Slack, webhook) while firing.
    repeat_interval: Duration = Field(default=3600.0, gt=0)
    # Alertmanager: re-send while firing this often, with endsAt = now +
    # ends_at_factor x max(journey interval, ends_at_min_interval), and keep re-sending
    # a resolved alert for resolve_resend_for.
    resend_interval: Duration = Field(default=60.0, gt=0)
    ends_at_factor: float = Field(default=4.0, ge=1)
    ends_at_min_interval: Duration = Field(default=60.0, gt=0)
    resolve_resend_for: Duration = Field(default=300.0, ge=0)
    # Always-firing SynthmonHeartbeat alert to Alertmanager (deadman's switch).
    heartbeat: bool = True
    # Outbox retry backoff: base, doubling per failure, capped.
    retry_base_delay: Duration = Field(default=1.0, gt=0)
    # Capped at a minute: after a receiver outage, alerts arrive within a minute of
    # its return.
    retry_max_delay: Duration = Field(default=60.0, gt=0)
    send_timeout: Duration = Field(default=10.0, gt=0)
    alertmanager: AlertmanagerConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    slack: WebhookConfig | None = None
    webhook: WebhookConfig | None = None
    # Policy overrides: per severity, then per journey (config wins over @journey(alert=)).
    severity: dict[str, PolicyOverride] = Field(default_factory=dict)
    journeys: dict[str, PolicyOverride] = Field(default_factory=dict)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _routes_name_configured_notifiers(self) -> AlertingConfig:
        configured = set(self.configured_notifiers())
        for section, table in (("routes", self.routes), ("tag_routes", self.tag_routes)):
            for key, names in table.items():
                if section == "routes" and key not in DEFAULT_ROUTES:
                    raise ValueError(
                        f"routes.{key}: unknown severity; use critical, warning or info"
                    )
                for name in names:
                    if name not in NOTIFIERS and name != "log":
                        raise ValueError(
                            f"{section}.{key}: unknown notifier {name!r}; "
                            f"use {', '.join(NOTIFIERS)}"
                        )
                    if name != "log" and name not in configured:
                        raise ValueError(
                            f"{section}.{key}: notifier {name!r} is not configured; "
                            f"add an [alerting.{name}] section"
                        )
        for key in self.severity:
            if key not in DEFAULT_ROUTES:
                raise ValueError(f"severity.{key}: unknown severity; use critical, warning or info")
        return self

    def configured_notifiers(self) -> list[str]:
        return [n for n in NOTIFIERS if getattr(self, n) is not None]

    def route(self, severity: str, tags: tuple[str, ...] = ()) -> list[str]:
        """Notifier names for an alert of `severity` from a journey with `tags`."""
        configured = self.configured_notifiers()
        names = list(self.routes.get(severity, DEFAULT_ROUTES.get(severity, [])))
        for tag in tags:
            names += self.tag_routes.get(tag, [])
        return [n for n in dict.fromkeys(names) if n in configured]
