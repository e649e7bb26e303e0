"""What an alert says: the `Alert` the engine builds from a tracked state and a run
(summary, severity, the scrubbed error, links to synthmon's journey page and to the
run's artifacts) and the heartbeat. Pure formatting: no state, no I/O; the engine
(engine.py) decides *when* an alert is sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from urllib.parse import quote

from synthmon.alerting import degraded
from synthmon.alerting.alert import Alert, AlertName, Event
from synthmon.alerting.scrub import scrub
from synthmon.alerting.tracked import Tracked
from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Severity


class AlertRenderer:
    def __init__(
        self,
        *,
        location: str | None,
        external_url: str | None,
        trace_url: Callable[[str | None], str | None] = lambda trace_id: None,
    ) -> None:
        self._location = location
        # A run's trace in the tracing UI ([tracing] ui_url), linked from its alert.
        self._trace_url = trace_url
        # Links in alerts (status_url, artifacts) are absolute only with server.external_url.
        self._external_url = external_url.rstrip("/") if external_url else None

    def heartbeat(self, now: float, interval: float) -> Alert:
        return Alert(
            alertname=AlertName.HEARTBEAT,
            journey="",
            target="",
            location=self._location,
            severity="none",
            state="firing",
            event=Event.REMINDER,
            incident=0,
            summary="synthmon is alive: this alert always fires; its absence means synthmon "
            "is down or wedged",
            fired_at=now,
            status_url=self._external_url,
            interval=interval,
        )

    def summary(
        self,
        name: AlertName,
        j: Journey,
        target: str,
        *,
        resolved: bool = False,
        step: str | None = None,
        reason: str | None = None,
    ) -> str:
        if resolved:
            return {
                AlertName.FAILED: f"Journey {j.name} on {target} passes again",
                AlertName.DEGRADED: f"Journey {j.name} on {target} is no longer degraded",
                AlertName.INTERNAL: f"synthmon runs journey {j.name} on {target} again",
            }.get(name, f"{name.value} resolved")
        if name is AlertName.INTERNAL:
            return (
                f"synthmon cannot run journey {j.name} on {target} ({reason}): "
                "a synthmon problem, not a target outage"
            )
        at = f" at step '{step}'" if step else ""
        return f"Journey {j.name} is failing on {target}{at}"

    def alert(self, t: Tracked, j: Journey, r: RunResult, event: Event) -> Alert:
        p = t.policy
        severity = j.severity.value if t.alertname is AlertName.FAILED else Severity.WARNING.value
        error = r.error_message
        summary = self.summary(t.alertname, j, r.target, step=r.failed_step, reason=r.reason)
        if t.alertname is AlertName.DEGRADED:
            # Over the latency budget and/or a page over its Web Vitals (degraded.py).
            error, summary = degraded.error(j, r), degraded.summary(j, r)
        return Alert(
            alertname=t.alertname,
            journey=j.name,
            target=r.target,
            location=self._location,
            severity=severity,
            state="firing",
            event=event,
            incident=p.incident,
            summary=summary,
            failing_step=r.failed_step,
            error_message=scrub(error),
            reason=r.reason,
            run_id=r.run_id,
            trace_id=r.trace_id,
            first_failure_at=p.first_failure_at,
            failed_runs=p.failed_runs,
            last_success_at=p.last_success_at,
            fired_at=p.fired_at,
            artifacts=tuple(self._artifact_url(a) for a in r.artifacts),
            description=j.description,
            runbook_url=j.runbook_url,
            status_url=self._status_url(j.name, r.target),
            trace_url=self._trace_url(r.trace_id),
            tags=j.tags,
            interval=j.interval or 60.0,
        )

    def _status_url(self, journey: str, target: str) -> str | None:
        if self._external_url is None:
            return None
        return f"{self._external_url}/journeys/{quote(journey)}?target={quote(target)}"

    def _artifact_url(self, artifact: str) -> str:
        if "://" in artifact or self._external_url is None:
            return artifact
        # Runs store `<artifacts dir>/<journey>/<run_id>/<file>`; the status server
        # serves exactly those three parts under /artifacts/.
        parts = PurePath(artifact).parts[-3:]
        return f"{self._external_url}/artifacts/{'/'.join(quote(p) for p in parts)}"
