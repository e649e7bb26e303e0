"""The slot-grid dispatcher. Knows callables and schedules, not journeys or runners.

One timer serves every pair: a heap of due times (epoch seconds), and a single
`loop.call_at` armed for the earliest. When it fires, every pair whose slot is due is
dispatched in the same callback — one event-loop wake-up for all the runs due
together — and put back on the heap at its next slot. Until 2026-11-30 each pair was
an APScheduler job: its per-job dispatch (executor submit, three events, a job-store
update that is O(pairs), a wake-up per job) cost 60-95 µs of CPU per run here, more
than all the sinks together, and grew with the number of pairs (docs/benchmarks.md).
APScheduler stays for what it does well: cron expressions (`config.cron`, its
`CronTrigger`), which give cron pairs their next fire time.

The rules every pair gets (they were APScheduler options before, the same semantics):

- a fixed phase within its interval derived from its key (`slots.phase`), so 500
  pairs do not fire at once and a restart neither re-runs everything at once nor
  shifts any pair's phase; phases lie on a grid of `slot` seconds (default 100 ms):
  runs due within the same slot share one wake-up;
- at most one run of a pair at a time: a slot that comes due while the pair's run is
  still going is skipped, reported through ``on_skip`` as ``overlap`` and through
  ``on_slot_skipped`` (the owner knows whether the run still going is a
  retry/re-check that takes the slot over);
- after a stall, slots that piled up collapse into one late run of the latest one
  (the collapsed ones are reported as ``coalesced``); a run later than its grace (one
  interval, 60 s for cron) is not started and reported as ``missed``.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from synthmon.config.cron import cron_trigger
from synthmon.scheduling.slots import MAX_CRON_STEPS, Grid, phase

log = structlog.get_logger("synthmon.scheduling")

JobFunc = Callable[[], Awaitable[None]]
# (job key, reason, how many runs) for runs that did not happen.
OnSkip = Callable[[str, str, int], None]
# (job key, seconds late) when a run starts.
OnStart = Callable[[str, float], None]
# (job key, slot time, reason) for a slot that is skipped (overlap).
OnSlotSkipped = Callable[[str, float, str], None]

# The due time (epoch seconds) of the slot the running job serves; read by the job.
current_slot: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "synthmon_current_slot", default=None
)

# Due within this much of the timer firing counts as due now (timers fire on the
# loop's monotonic clock; due times are wall-clock epoch seconds).
EARLY = 0.001
CRON_GRACE = 60.0


@dataclass(frozen=True, slots=True)
class Schedule:
    interval: float | None = None
    cron: str | None = None
    timezone: str = "UTC"


class _Entry:
    """One scheduled pair: its job, when its next slot is due and how to find the one
    after."""

    __slots__ = ("due", "func", "grace", "grid", "index", "key", "trigger")

    def __init__(
        self, key: str, func: JobFunc, grid: Grid | None, trigger: Any, grace: float
    ) -> None:
        self.key = key
        self.func = func
        self.grid = grid
        self.trigger = trigger
        self.grace = grace
        self.due = math.inf  # epoch seconds of the next slot
        self.index = 0  # interval pairs: the grid index of `due`

    def first_after(self, now: float) -> None:
        """Point at the first slot at or after `now`."""
        if self.grid is not None:
            self.index = math.ceil((now - self.grid.phase) / self.grid.interval - 1e-9)
            self.due = self.grid.phase + self.index * self.grid.interval
        else:
            self.due = self._cron_at_or_after(now)

    def latest(self, now: float) -> tuple[float, int]:
        """The latest slot due by `now` (at least the current one) and how many due
        slots before it it stands for (coalesced)."""
        if self.grid is not None:
            last = max(self.index, math.floor((now - self.grid.phase) / self.grid.interval))
            behind = last - self.index
            self.index = last
            self.due = self.grid.phase + last * self.grid.interval
            return self.due, behind
        slot, behind = self.due, 0
        while behind < MAX_CRON_STEPS:
            nxt = self._cron_at_or_after(slot + 0.001)
            if nxt > now + EARLY:
                break
            slot, behind = nxt, behind + 1
        self.due = slot
        return slot, behind

    def advance(self) -> None:
        """Point at the slot after the current one."""
        if self.grid is not None:
            self.index += 1
            self.due = self.grid.phase + self.index * self.grid.interval
        else:
            self.due = self._cron_at_or_after(self.due + 0.001)

    def _cron_at_or_after(self, t: float) -> float:
        fire = self.trigger.get_next_fire_time(None, datetime.fromtimestamp(t, UTC))
        return fire.timestamp() if isinstance(fire, datetime) else math.inf


class Scheduler:
    def __init__(
        self,
        *,
        on_skip: OnSkip,
        on_start: OnStart,
        on_slot_skipped: OnSlotSkipped | None = None,
        clock: Callable[[], float] = time.time,
        slot: float = 0.1,
    ) -> None:
        self._on_skip = on_skip
        self._on_start = on_start
        self._on_slot_skipped = on_slot_skipped or (lambda key, at, reason: None)
        self._clock = clock
        self._slot = slot
        self._entries: dict[str, _Entry] = {}
        # (due, sequence, entry); an entry removed or re-added leaves stale tuples
        # behind, skipped when popped (the entry's `due` no longer matches, or the key
        # now maps to another entry).
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = 0
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._state = "stopped"  # stopped -> running -> paused -> stopped
        self._firing = False  # inside `_fire`: it re-arms once at the end

    @property
    def running(self) -> bool:
        return self._state == "running"

    def add(self, key: str, func: JobFunc, schedule: Schedule) -> None:
        """Schedule `func` under `key` (replacing a job of the same key)."""
        if schedule.cron:
            entry = _Entry(
                key,
                func,
                None,
                cron_trigger(schedule.cron, timezone=schedule.timezone),
                CRON_GRACE,
            )
        else:
            assert schedule.interval is not None
            interval = schedule.interval
            grid = Grid(interval, phase(key, interval, self._slot))
            entry = _Entry(key, func, grid, None, max(1.0, float(int(interval))))
        entry.first_after(self._clock())
        self._entries[key] = entry
        self._push(entry)

    def remove(self, key: str) -> None:
        self._entries.pop(key, None)

    def keys(self) -> set[str]:
        return set(self._entries)

    def next_run(self, key: str) -> float | None:
        entry = self._entries.get(key)
        if entry is None or entry.due == math.inf:
            return None
        return entry.due

    def start(self) -> None:
        """Start dispatching (must be called inside the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._state = "running"
        self._timer_at = math.inf
        self._arm()

    def pause(self) -> None:
        """Stop starting new runs; in-flight runs continue."""
        if self._state == "running":
            self._state = "paused"
            self._disarm()

    def shutdown(self) -> None:
        self._state = "stopped"
        self._disarm()

    # -- the timer ---------------------------------------------------------------------

    def _push(self, entry: _Entry) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (entry.due, self._seq, entry))
        if self._state == "running" and not self._firing and entry.due < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        """(Re)arm the one timer for the earliest due slot."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        if not heap or self._loop is None:
            self._disarm()
            return
        due = heap[0][0]
        if self._timer is not None:
            if due == self._timer_at:
                return
            self._timer.cancel()
        self._timer_at = due
        delay = max(0.0, due - self._clock())
        self._timer = self._loop.call_at(self._loop.time() + delay, self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def _live(self, item: tuple[float, int, _Entry]) -> bool:
        entry = item[2]
        return self._entries.get(entry.key) is entry and entry.due == item[0]

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._state != "running":
            return
        now = self._clock()
        heap = self._heap
        self._firing = True
        try:
            while heap and heap[0][0] <= now + EARLY:
                item = heapq.heappop(heap)
                if self._live(item):
                    self._dispatch(item[2], now)
        finally:
            self._firing = False
            self._arm()

    def _dispatch(self, entry: _Entry, now: float) -> None:
        """Serve the latest due slot of `entry`, then put it back at its next slot."""
        key = entry.key
        slot, behind = entry.latest(now)
        if behind > 0:
            self._on_skip(key, "coalesced", behind)
        if now - slot > entry.grace:
            # Not run: the slot stays unclaimed (the owner's ledger records it missed).
            self._on_skip(key, "missed", 1)
        elif key in self._running:
            self._on_skip(key, "overlap", 1)
            self._on_slot_skipped(key, slot, "overlap")
        else:
            assert self._loop is not None
            self._running[key] = self._loop.create_task(self._run(entry, slot))
        entry.advance()
        self._push(entry)

    async def _run(self, entry: _Entry, slot: float) -> None:
        key = entry.key
        try:
            self._on_start(key, self._clock() - slot)
            current_slot.set(slot)
            await entry.func()
        except Exception:
            # The daemon's job turns every journey outcome into a result; whatever
            # still gets here is a bug of ours: say so, keep scheduling.
            log.exception("job_failed", job=key)
        finally:
            self._running.pop(key, None)
