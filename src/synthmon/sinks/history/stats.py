"""Availability, MTTR, MTTD, MTBF and incident durations over a window: pure
arithmetic on a pair's incidents and run counts (definitions: docs/history.md).

- An incident is *in* a window when it overlaps it (an open one lasts until `now`).
- MTTR: mean full duration (first failed attempt → recovery) of the incidents that
  *ended* within the window; an open incident has no repair time yet.
- MTTD: mean (alert fired - first failed attempt) of the incidents detected within it.
- MTBF: mean (start of an incident - end of the one before) for incidents that
  *started* within the window (the one before may lie before the window).
- Time availability: (observed - down) / observed, where observed is the window from
  the pair's first slot on, minus slots the daemon missed, and down is the incidents'
  overlap with the observed window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from synthmon.sinks.history.records import IncidentRecord

WINDOWS: dict[str, float] = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


@dataclass(frozen=True, slots=True)
class WindowStats:
    window: str
    runs_counted: int
    runs_passed: int
    availability: float | None  # passing / counted runs
    time_observed_seconds: float
    time_up_seconds: float
    time_availability: float | None  # time up / time observed
    incidents: int
    open_incidents: int
    mttr_seconds: float | None
    mttd_seconds: float | None
    mtbf_seconds: float | None
    longest_incident_seconds: float | None
    p50_incident_seconds: float | None
    p95_incident_seconds: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "runs_counted": self.runs_counted,
            "runs_passed": self.runs_passed,
            "availability": _r(self.availability),
            "time_observed_seconds": round(self.time_observed_seconds, 3),
            "time_up_seconds": round(self.time_up_seconds, 3),
            "time_availability": _r(self.time_availability),
            "incidents": self.incidents,
            "open_incidents": self.open_incidents,
            "mttr_seconds": _r(self.mttr_seconds),
            "mttd_seconds": _r(self.mttd_seconds),
            "mtbf_seconds": _r(self.mtbf_seconds),
            "longest_incident_seconds": _r(self.longest_incident_seconds),
            "p50_incident_seconds": _r(self.p50_incident_seconds),
            "p95_incident_seconds": _r(self.p95_incident_seconds),
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in (0, 100]): an actual incident's duration."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def window_stats(
    window: str,
    *,
    now: float,
    seconds: float,
    counted: int,
    passed: int,
    incidents: Sequence[IncidentRecord],
    first_slot_at: float | None,
    missed: Sequence[tuple[float, float]] = (),
) -> WindowStats:
    """The figures of one pair over (now - seconds, now]. `incidents` in any order,
    all of the pair's (the one before the window matters for MTBF); `missed` holds
    (first missed slot, seconds covered) rows."""
    start = now - seconds
    ordered = sorted(incidents, key=lambda i: i.started_at)
    inside = [i for i in ordered if i.started_at < now and (i.ended_at or now) > start]
    ended = [i for i in inside if i.ended_at is not None and start < i.ended_at <= now]
    repairs = [i.ended_at - i.started_at for i in ended if i.ended_at is not None]
    detections = [i.detected_at - i.started_at for i in inside if start < i.detected_at <= now]
    gaps = [
        nxt.started_at - prev.ended_at
        for prev, nxt in itertools.pairwise(ordered)
        if prev.ended_at is not None and start < nxt.started_at <= now
    ]
    durations = [(i.ended_at or now) - i.started_at for i in inside]
    observed_from = max(start, first_slot_at) if first_slot_at is not None else now
    observed = max(now - observed_from, 0.0)
    for first, span in missed:
        observed -= _overlap(first, first + span, observed_from, now)
    observed = max(observed, 0.0)
    down = sum(_overlap(i.started_at, i.ended_at or now, observed_from, now) for i in inside)
    up = max(observed - down, 0.0)
    return WindowStats(
        window=window,
        runs_counted=counted,
        runs_passed=passed,
        availability=passed / counted if counted else None,
        time_observed_seconds=observed,
        time_up_seconds=up,
        time_availability=up / observed if observed > 0 else None,
        incidents=len(inside),
        open_incidents=sum(1 for i in inside if i.ended_at is None),
        mttr_seconds=_mean(repairs),
        mttd_seconds=_mean(detections),
        mtbf_seconds=_mean(gaps),
        longest_incident_seconds=max(durations) if durations else None,
        p50_incident_seconds=percentile(repairs, 50),
        p95_incident_seconds=percentile(repairs, 95),
    )
