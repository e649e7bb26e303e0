"""Scheduler dispatch: CPU per scheduled run of a no-op job, synthmon's slot-grid
dispatcher against one APScheduler 3.x job per pair (what synthmon used until
2026-11-30: AsyncIOScheduler, IntervalTrigger, max_instances=1, coalesce=True, a
misfire grace of one interval, a listener for submitted/missed/max-instances events),
side by side in one process, at 100, 1,000 and 5,000 pairs every second.

The job does nothing, so the figure is the scheduling cost alone: what every run of
the daemon pays before its journey starts (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sizes import Size

from synthmon.scheduling.scheduler import Schedule, Scheduler
from synthmon.scheduling.slots import phase


async def _measure(
    start: Callable[[], None], stop: Callable[[], None], runs: list[int], seconds: float
) -> float:
    start()
    await asyncio.sleep(1.5)  # every pair has fired once
    cpu0, n0 = time.process_time(), runs[0]
    await asyncio.sleep(seconds)
    cpu, n = time.process_time() - cpu0, runs[0] - n0
    stop()
    return cpu / max(n, 1)


async def grid(pairs: int, seconds: float) -> float:
    runs = [0]

    async def job() -> None:
        runs[0] += 1

    sched = Scheduler(on_skip=lambda *a: None, on_start=lambda key, lag: None)
    for i in range(pairs):
        sched.add(f"j{i}@t", job, Schedule(interval=1))
    return await _measure(sched.start, sched.shutdown, runs, seconds)


async def apscheduler(pairs: int, seconds: float) -> float:
    runs = [0]

    async def job() -> None:
        runs[0] += 1

    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)  # per-job lines, cancels at exit
    aps = AsyncIOScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": AsyncIOExecutor()},
        timezone=UTC,
    )
    aps.add_listener(
        lambda event: None, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
    )
    now = time.time()
    for i in range(pairs):
        key = f"j{i}@t"
        first = datetime.fromtimestamp(now - (now - phase(key, 1)) % 1, UTC)
        trigger: Any = IntervalTrigger(seconds=1, start_date=first, timezone=UTC)
        aps.add_job(job, trigger, id=key, max_instances=1, coalesce=True, misfire_grace_time=1)

    def stop() -> None:
        aps.shutdown(wait=False)

    return await _measure(aps.start, stop, runs, seconds)


async def main(size: Size) -> dict[str, Any]:
    out: dict[str, Any] = {}  # pairs -> (ours, APScheduler) CPU seconds per run
    print("== Scheduler dispatch: CPU per run of a no-op job (lower is better) ==")
    seconds = size.pick(4, 4, 1)
    for pairs in size.pick((100, 1000, 5000), (100, 1000), (100,)):
        ours = await grid(pairs, seconds)
        theirs = await apscheduler(pairs, seconds)
        await asyncio.sleep(0.5)  # let cancelled APScheduler jobs finish
        out[str(pairs)] = (ours, theirs)
        print(
            f"  {pairs:5d} pairs every 1 s: slot-grid dispatcher {ours * 1e6:6.1f} us   "
            f"APScheduler job per pair {theirs * 1e6:6.1f} us   ({theirs / ours:.1f}x)"
        )
    return out


if __name__ == "__main__":
    import sys

    asyncio.run(main(Size.of(quick="--quick" in sys.argv)))
