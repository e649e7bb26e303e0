"""Slots: the scheduled times of a (journey, target) pair, and the ledger that makes
every one of them end in exactly one recorded outcome.

An interval pair's slots lie on a fixed grid, ``phase + k * interval`` (epoch seconds),
where the phase is derived from the pair's name: a restart keeps every pair's phase
(nothing re-runs at once, nothing shifts) and 500 pairs still spread over the interval.

`SlotLedger.claim(key, slot)` is called when a slot is served (a run starts, or the
slot is skipped): grid points between the last claimed slot and this one were never
served — the daemon was down, or the event loop stalled and the scheduler coalesced
them — and come back as one `Gap` to record as *missed*. Cron pairs have no grid:
their gaps are the cron's fire times in between.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# A gap longer than this many cron fires is counted by stepping no further: a cron
# pair firing every minute that was down for a year is one row, not 500,000 steps.
MAX_CRON_STEPS = 10_000


def phase(key: str, interval: float, grid: float = 0.1) -> float:
    """The pair's offset within its interval, in [0, interval): a hash of its name,
    rounded to `grid` (runs due within one grid step share one event-loop wake-up)."""
    digest = hashlib.sha256(key.encode()).digest()
    frac = int.from_bytes(digest[:8], "big") / 2**64
    offset = frac * interval
    if grid > 0:
        offset = math.floor(offset / grid) * grid
    return offset % interval if interval > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Grid:
    """Slots ``phase + k * interval``."""

    interval: float
    phase: float

    def index(self, t: float) -> int:
        """The index of the slot nearest `t` (due times come back with float noise)."""
        return round((t - self.phase) / self.interval)

    def at(self, index: int) -> float:
        return round(self.phase + index * self.interval, 3)


@dataclass(frozen=True, slots=True)
class Gap:
    """Slots nobody served: `count` slots from `first` to `last` (inclusive),
    covering `span` seconds of the pair's schedule."""

    first: float
    last: float
    count: int
    span: float


class SlotLedger:
    """The last slot served per pair; turns holes in the sequence into `Gap`s."""

    def __init__(self, next_cron_fire: Callable[[str, float], float | None]) -> None:
        self._next_cron_fire = next_cron_fire
        self._grids: dict[str, Grid] = {}
        self._crons: dict[str, str] = {}
        self._last: dict[str, float] = {}

    def track(self, key: str, *, interval: float | None, cron: str | None) -> Grid | None:
        """Start (or keep) tracking a pair; returns its grid for interval pairs."""
        if interval:
            grid = Grid(interval, phase(key, interval))
            if self._grids.get(key) != grid:
                self._grids[key] = grid
            self._crons.pop(key, None)
            return grid
        self._grids.pop(key, None)
        if cron:
            self._crons[key] = cron
        return None

    def forget(self, key: str) -> None:
        self._grids.pop(key, None)
        self._crons.pop(key, None)
        self._last.pop(key, None)

    def resume(self, key: str, last_slot: float) -> None:
        """The last slot recorded before this process started (from the history)."""
        if last_slot > self._last.get(key, -math.inf):
            self._last[key] = last_slot

    def claim(self, key: str, slot: float) -> Gap | None:
        """`slot` is being served. Returns the slots skipped over since the last claim."""
        prev = self._last.get(key)
        if prev is not None and slot <= prev:
            return None  # served already (an overlap claimed it first)
        self._last[key] = slot
        if prev is None:
            return None
        grid = self._grids.get(key)
        if grid is not None:
            a, b = grid.index(prev), grid.index(slot)
            if b - a <= 1:
                return None
            return Gap(grid.at(a + 1), grid.at(b - 1), b - a - 1, (b - a - 1) * grid.interval)
        cron = self._crons.get(key)
        if cron is None:
            return None
        fires: list[float] = []
        t = prev
        while len(fires) < MAX_CRON_STEPS:
            nxt = self._next_cron_fire(cron, t + 0.001)
            if nxt is None or nxt >= slot - 0.001:
                break
            fires.append(nxt)
            t = nxt
        if not fires:
            return None
        return Gap(fires[0], fires[-1], len(fires), slot - fires[0])


def cron_fire_after(cron: str, after: float) -> float | None:
    """The cron's first fire time at or after `after` (epoch seconds, UTC)."""
    from synthmon.config.cron import next_fire

    fire = next_fire(cron, datetime.fromtimestamp(after, UTC))
    return fire.timestamp() if fire is not None else None
