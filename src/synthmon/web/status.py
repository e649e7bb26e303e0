"""The status server's views of the daemon: /readyz checks and /api/journeys.

Read-only: `StatusViews` reads the daemon's parts through `DaemonState` and changes
nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from synthmon.alerting.alert import AlertName
from synthmon.alerting.policy import AlertState
from synthmon.model import Kind
from synthmon.sinks.latest import result_json

if TYPE_CHECKING:
    from synthmon.alerting.engine import AlertEngine
    from synthmon.config.settings import Settings
    from synthmon.journeys.dsl import Journey
    from synthmon.journeys.loader import LoadReport
    from synthmon.model import Target
    from synthmon.runners.base import Runner
    from synthmon.safety.facade import Safety
    from synthmon.scheduling.scheduler import Scheduler
    from synthmon.scheduling.sharding import Shard
    from synthmon.sinks.history.sink import HistorySink
    from synthmon.sinks.latest import LatestResults
    from synthmon.sinks.tls_metrics import TlsMetrics


class DaemonState(Protocol):
    """The parts of the daemon the views read."""

    settings: Settings
    state: str
    scheduler: Scheduler
    journeys: dict[str, Journey]
    pairs: dict[str, tuple[Journey, Target]]
    load_report: LoadReport
    runners: dict[Kind, Runner]
    latest: LatestResults
    safety: Safety
    shard: Shard | None
    alerting: AlertEngine
    history: HistorySink | None
    tls: TlsMetrics


class StatusViews:
    """Implements `web.server.StatusSource` from the daemon's parts."""

    def __init__(self, daemon: DaemonState) -> None:
        self.d = daemon

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {
            "state": self.d.state,
            "scheduler_running": self.d.scheduler.running,
            "journeys_loaded": len(self.d.journeys),
            "load_errors": [str(p) for p in self.d.load_report.problems],
        }
        ready = self.d.state == "running" and self.d.scheduler.running and bool(self.d.journeys)
        if self.d.history is not None:
            # Reported, never a reason to be unready: history is best-effort.
            checks["history"] = self.d.history.status()
        # A data dir that refuses writes: alerts still go out (from memory), but they
        # would not survive a restart, and someone has to free the disk.
        disk_ok, checks["data_dir"] = self.d.alerting.disk.readiness()
        ready = ready and disk_ok
        if Kind.BROWSER not in self.d.runners:
            # Built on the first browser journey: until then Chromium is not needed.
            checks["browser_runner"] = {"needed": False, "launched": False}
        for kind, runner in self.d.runners.items():
            status = getattr(runner, "readiness", None)
            if status is not None:
                ok, detail = status()
                checks[f"{kind.value}_runner"] = detail
                ready = ready and ok
        return ready, checks

    def journeys_json(self) -> list[dict[str, Any]]:
        out = []
        for key, (j, t) in sorted(self.d.pairs.items()):
            state = self.d.latest.get(j.name, t.name)
            failed = self.d.alerting.state(AlertName.FAILED, j.name, t.name)
            degraded = self.d.alerting.state(AlertName.DEGRADED, j.name, t.name)
            alert_state = failed.policy.state if failed is not None else AlertState.OK
            paused = self.d.safety.is_paused(j, t.name)
            stats = self.d.history.stats(j.name, t.name) if self.d.history is not None else None
            out.append(
                {
                    "journey": j.name,
                    "target": t.name,
                    "location": self.d.settings.location,
                    "shard": str(self.d.shard) if self.d.shard else None,
                    "kind": j.kind.value,
                    "severity": j.severity.value,
                    "schedule": j.schedule,
                    "timeout_seconds": j.timeout,
                    "tags": list(j.tags),
                    "description": j.description,
                    "runbook_url": j.runbook_url,
                    "paused": paused,
                    "file": j.where,
                    "next_run_at": self.d.scheduler.next_run(key),
                    "runs": state.runs if state else 0,
                    "consecutive_failures": state.consecutive_failures if state else 0,
                    "last_success_at": state.last_success_at if state else None,
                    "last_result": result_json(state.last) if state and state.last else None,
                    "state": _state(
                        paused=paused,
                        runs=state.runs if state else 0,
                        alert=alert_state,
                        degraded=degraded is not None
                        and degraded.policy.state is AlertState.FIRING,
                    ),
                    "alert_state": alert_state.value,
                    "availability": {w: s.availability for w, s in (stats or {}).items()},
                    "mttr_seconds": {w: s.mttr_seconds for w, s in (stats or {}).items()},
                    "mtbf_seconds": {w: s.mtbf_seconds for w, s in (stats or {}).items()},
                    "stats": self.d.history.stats_json(j.name, t.name)
                    if self.d.history is not None
                    else None,
                    # Certificates this pair's HTTPS connections presented, per host.
                    "tls": self.d.tls.pair_json(j.name, t.name),
                }
            )
        return out


def _state(*, paused: bool, runs: int, alert: AlertState, degraded: bool) -> str:
    """One word for a pair (docs/history.md): paused, never_run, failing (its
    SyntheticJourneyFailed alert fires), degraded (failing runs not confirmed yet, or
    slower than its budget), passing."""
    if paused:
        return "paused"
    if alert is AlertState.FIRING:
        return "failing"
    if runs == 0:
        return "never_run"
    if alert is AlertState.PENDING or degraded:
        return "degraded"
    return "passing"
