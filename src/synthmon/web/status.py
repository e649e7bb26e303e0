"""The status server's views of the daemon: /readyz checks and /api/journeys.

Read-only: `StatusViews` reads the daemon's parts through `DaemonState` and changes
nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from synthmon.model import Kind
from synthmon.sinks.latest import result_json

if TYPE_CHECKING:
    from synthmon.config.settings import Settings
    from synthmon.journeys.dsl import Journey
    from synthmon.journeys.loader import LoadReport
    from synthmon.model import Target
    from synthmon.runners.base import Runner
    from synthmon.safety.facade import Safety
    from synthmon.scheduling.scheduler import Scheduler
    from synthmon.scheduling.sharding import Shard
    from synthmon.sinks.latest import LatestResults


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
                    "paused": self.d.safety.is_paused(j, t.name),
                    "file": j.where,
                    "next_run_at": self.d.scheduler.next_run(key),
                    "runs": state.runs if state else 0,
                    "consecutive_failures": state.consecutive_failures if state else 0,
                    "last_success_at": state.last_success_at if state else None,
                    "last_result": result_json(state.last) if state and state.last else None,
                }
            )
        return out
