"""The latest result of every (journey, target) pair: what /api/journeys serves."""

from __future__ import annotations

import dataclasses
from typing import Any

from synthmon.model import PageVitals, RunResult, Verdict


@dataclasses.dataclass(slots=True)
class PairState:
    last: RunResult | None = None
    last_success_at: float | None = None
    consecutive_failures: int = 0
    runs: int = 0


class LatestResults:
    """Keeps the last RunResult per pair (a sink; `record` is in memory, so the fan-out
    calls it inline) and answers the status API."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], PairState] = {}

    async def emit(self, result: RunResult) -> None:
        self.record(result)

    def record(self, result: RunResult) -> None:
        state = self._pairs.setdefault((result.journey, result.target), PairState())
        state.last = result
        state.runs += 1
        verdict = result.verdict  # the one counting rule (model.py)
        if verdict is Verdict.PASS:
            state.last_success_at = result.started_at + result.duration
            state.consecutive_failures = 0
        elif verdict is Verdict.FAIL:
            state.consecutive_failures += 1

    def get(self, journey: str, target: str) -> PairState | None:
        return self._pairs.get((journey, target))

    def forget(self, keep: set[tuple[str, str]]) -> None:
        for key in [k for k in self._pairs if k not in keep]:
            del self._pairs[key]


def result_json(result: RunResult) -> dict[str, Any]:
    """A RunResult as JSON-ready data (the shape /api and the run log share)."""
    return {
        "run_id": result.run_id,
        "trace_id": result.trace_id,
        "location": result.location,
        "status": result.status.value,
        "started_at": result.started_at,
        "duration_seconds": round(result.duration, 6),
        "failed_step": result.failed_step,
        "error_type": result.error_type,
        "error": result.error_message,
        "reason": result.reason,
        "attempt": result.attempt,
        "artifacts": list(result.artifacts),
        "steps": [
            {
                "name": s.name,
                "status": s.status.value,
                "duration_seconds": round(s.duration, 6),
                "soft": s.soft,
                "error": s.error_message,
                **({"timings": dict(s.timings)} if s.timings else {}),
            }
            for s in result.steps
        ],
        **(
            {"web_vitals": [page_vitals_json(p) for p in result.web_vitals]}
            if result.web_vitals
            else {}
        ),
    }


def page_vitals_json(page: PageVitals) -> dict[str, Any]:
    """One document's Web Vitals as /api and the history serve them."""
    return {
        "step": page.step,
        "url": page.url,
        "values": dict(page.values),
        "over_threshold": dict(page.breaches),
    }
