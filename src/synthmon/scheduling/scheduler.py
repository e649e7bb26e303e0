"""APScheduler 3.x wiring. Knows callables and schedules, not journeys or runners.

APScheduler's defaults drop runs silently (misfire_grace_time=1 s, overlapping runs
skipped with only a log line). Here every job gets:

- a fixed phase within its interval derived from its key (`slots.phase`), so 500
  jobs do not fire at once and a restart neither re-runs everything at once nor
  shifts any job's phase; phases lie on a grid of `slot` seconds (default 100 ms):
  waking the event loop costs more CPU than a simple HTTP run itself, so runs due
  within the same slot share one wake-up instead of each paying for its own;
- ``max_instances=1``: a run still going when the next is due makes that next run
  skipped, reported through ``on_skip`` as ``overlap`` (the owner knows whether the
  run still going is a retry/re-check that takes the slot over);
- ``coalesce=True`` and ``misfire_grace_time`` = one interval: after a stall, runs
  that piled up collapse into one late run (the collapsed ones are reported as
  ``coalesced``); a run later than a whole interval is reported as ``missed``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from synthmon.config.cron import cron_trigger
from synthmon.scheduling.slots import Grid, phase

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


MAX_INSTANCES_WARNING = "maximum number of running instances reached"


def _quiet_max_instances() -> None:
    """APScheduler warns "maximum number of running instances reached" on its own
    logger; `Scheduler` reports each such slot through `on_skip`, and the owner
    decides whether it is a lost run (``overlap``) or one a retry/re-check of the same
    pair took over, which is no one's problem. One message, said by the owner."""
    logger = logging.getLogger("apscheduler.scheduler")
    if _not_max_instances not in logger.filters:
        logger.addFilter(_not_max_instances)


def _not_max_instances(record: logging.LogRecord) -> bool:
    return MAX_INSTANCES_WARNING not in record.getMessage()


@dataclass(frozen=True, slots=True)
class Schedule:
    interval: float | None = None
    cron: str | None = None
    timezone: str = "UTC"


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
        self._aps = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": AsyncIOExecutor()},
            timezone=UTC,
        )
        _quiet_max_instances()
        self._aps.add_listener(
            self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self._intervals: dict[str, float | None] = {}
        self._due: dict[str, datetime] = {}
        self._last_due: dict[str, datetime] = {}

    @property
    def running(self) -> bool:
        return bool(self._aps.running) and self._aps.state == 1  # STATE_RUNNING

    def add(self, key: str, func: JobFunc, schedule: Schedule) -> None:
        """Schedule `func` under `key` (replacing a job of the same key)."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        trigger: Any
        if schedule.cron:
            trigger = cron_trigger(schedule.cron, timezone=schedule.timezone)
            grace = 60
        else:
            assert schedule.interval is not None
            grid = Grid(schedule.interval, phase(key, schedule.interval, self._slot))
            # A start date on the pair's grid: APScheduler fires at start + k * interval.
            first = datetime.fromtimestamp(grid.anchor(now.timestamp()), UTC)
            trigger = IntervalTrigger(seconds=schedule.interval, start_date=first, timezone=UTC)
            grace = max(1, int(schedule.interval))
        self._intervals[key] = schedule.interval
        self._aps.add_job(
            self._wrap(key, func),
            trigger,
            id=key,
            name=key,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=grace,
        )

    def remove(self, key: str) -> None:
        if self._aps.get_job(key) is not None:
            self._aps.remove_job(key)
        self._intervals.pop(key, None)
        self._due.pop(key, None)
        self._last_due.pop(key, None)

    def keys(self) -> set[str]:
        return {job.id for job in self._aps.get_jobs()}

    def next_run(self, key: str) -> float | None:
        job = self._aps.get_job(key)
        if job is None or job.next_run_time is None:
            return None
        return float(job.next_run_time.timestamp())

    def start(self) -> None:
        """Start processing (must be called inside the running event loop)."""
        self._aps.start()

    def pause(self) -> None:
        """Stop starting new runs; in-flight runs continue."""
        if self._aps.running:
            self._aps.pause()

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def _wrap(self, key: str, func: JobFunc) -> JobFunc:
        async def job() -> None:
            due = self._due.pop(key, None)
            if due is not None:
                self._on_start(key, self._clock() - due.timestamp())
            current_slot.set(due.timestamp() if due is not None else None)
            await func()

        return job

    def _on_event(self, event: JobEvent) -> None:
        key = event.job_id
        if event.code == EVENT_JOB_MAX_INSTANCES:
            assert isinstance(event, JobSubmissionEvent)
            # Counted here; must not be counted again as coalesced by the next run.
            self._last_due[key] = event.scheduled_run_times[-1]
            self._on_skip(key, "overlap", 1)
            self._on_slot_skipped(key, event.scheduled_run_times[-1].timestamp(), "overlap")
        elif event.code == EVENT_JOB_MISSED:
            self._on_skip(key, "missed", 1)
        elif isinstance(event, JobSubmissionEvent):
            due = event.scheduled_run_times[-1]
            interval = self._intervals.get(key)
            prev = self._last_due.get(key)
            self._due[key] = self._last_due[key] = due
            if interval and prev is not None:
                # Coalesced runs: due times between the previous one and this one.
                behind = round((due - prev).total_seconds() / interval) - 1
                if behind > 0:
                    self._on_skip(key, "coalesced", behind)
