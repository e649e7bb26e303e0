"""What the status page shows of every pair at a glance, kept in memory by the history
writer thread so that rendering `/` with 500 journeys reads no database:

- `recent`: the latest counted runs (start, duration, passed) of each pair, for the
  latency sparkline. Seeded from the database once per pair, then appended to as
  runs are written.
- `days`: one `DayCell` per UTC day for the last `DAYS` days (the uptime bar),
  recomputed with the statistics (`[history] stats_interval`) from `run_hours` and the
  pair's incidents.

Reads (`recent_runs`, `day_cells`) come from the event loop and swap whole values, so
they never see a half-built one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from synthmon.model import RunResult, Status
from synthmon.sinks.history.records import IncidentRecord, is_counted

DAYS = 90
DAY = 86400.0
RECENT_RUNS = 60  # points of one sparkline
RECENT_SECONDS = 6 * 3600.0  # "the last hours" a sparkline covers

Pair = tuple[str, str]
Point = tuple[float, float, bool]  # started_at, duration, passed


@dataclass(frozen=True, slots=True)
class DayCell:
    """One UTC day of one pair: runs counted and passed, time down in incidents."""

    day: int  # days since the epoch (UTC)
    counted: int
    passed: int
    down_seconds: float
    incidents: int

    @property
    def availability(self) -> float | None:
        return self.passed / self.counted if self.counted else None


class OverviewQueries(Protocol):
    """The store's reads this module needs (`store.SqliteHistory` has them)."""

    def recent_points(self, journey: str, target: str, since: float, limit: int) -> list[Point]: ...

    def daily_counts(
        self, journey: str, target: str, since_day: int
    ) -> list[tuple[int, int, int]]: ...


def day_cells(
    counts: Iterable[tuple[int, int, int]],
    incidents: Sequence[IncidentRecord],
    *,
    now: float,
    days: int = DAYS,
) -> list[DayCell]:
    """The last `days` UTC days up to today, oldest first; days without data have
    `counted == 0` (and whatever incident time overlaps them)."""
    today = int(now // DAY)
    first = today - days + 1
    by_day = {d: (c, p) for d, c, p in counts}
    out = []
    for day in range(first, today + 1):
        start, end = day * DAY, min((day + 1) * DAY, now)
        down, n = 0.0, 0
        for i in incidents:
            overlap = min(i.ended_at or now, end) - max(i.started_at, start)
            if overlap > 0:
                down += overlap
                n += 1
        counted, passed = by_day.get(day, (0, 0))
        out.append(DayCell(day, counted, passed, down, n))
    return out


class Overview:
    def __init__(self) -> None:
        self._recent: dict[Pair, deque[Point]] = {}
        self._days: dict[Pair, list[DayCell]] = {}
        self._lock = threading.Lock()

    # -- the writer thread -----------------------------------------------------------

    def observe(self, runs: Sequence[RunResult]) -> None:
        """Runs just written: appended to the sparklines of pairs already seeded (an
        unseeded pair reads them from the database when it is seeded)."""
        with self._lock:
            for r in runs:
                ring = self._recent.get((r.journey, r.target))
                if ring is not None and is_counted(r):
                    ring.append((r.started_at, r.duration, r.status is Status.SUCCESS))

    def refresh(
        self,
        store: OverviewQueries,
        journey: str,
        target: str,
        incidents: Sequence[IncidentRecord],
        now: float,
    ) -> None:
        """Recompute the pair's day cells (and seed its sparkline the first time)."""
        key = (journey, target)
        if key not in self._recent:
            points = store.recent_points(journey, target, now - RECENT_SECONDS, RECENT_RUNS)
            with self._lock:
                self._recent[key] = deque(points, maxlen=RECENT_RUNS)
        since_day = int(now // DAY) - DAYS + 1
        counts = store.daily_counts(journey, target, since_day)
        failed = [i for i in incidents if i.alertname == "SyntheticJourneyFailed"]
        self._days[key] = day_cells(counts, failed, now=now)

    def keep(self, pairs: frozenset[Pair]) -> None:
        with self._lock:
            self._recent = {k: v for k, v in self._recent.items() if k in pairs}
            self._days = {k: v for k, v in self._days.items() if k in pairs}

    # -- readers (any thread) --------------------------------------------------------------

    def recent_runs(self, journey: str, target: str, since: float) -> list[Point]:
        with self._lock:
            ring = self._recent.get((journey, target))
            return [p for p in ring if p[0] >= since] if ring else []

    def days(self, journey: str, target: str) -> list[DayCell]:
        return self._days.get((journey, target), [])
