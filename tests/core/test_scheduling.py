"""APScheduler wiring: offsets, no overlap, coalescing, and every skipped run counted."""

from __future__ import annotations

import asyncio
import time

from synthmon.scheduling.scheduler import Schedule, Scheduler


class Recorder:
    def __init__(self) -> None:
        self.skips: list[tuple[str, str, int]] = []
        self.lags: list[float] = []

    def skip(self, key: str, reason: str, n: int) -> None:
        self.skips.append((key, reason, n))

    def start(self, key: str, lag: float) -> None:
        self.lags.append(lag)

    def skipped(self, reason: str) -> int:
        return sum(n for _, r, n in self.skips if r == reason)


def _scheduler(rec: Recorder) -> Scheduler:
    return Scheduler(on_skip=rec.skip, on_start=rec.start)


class TestScheduler:
    async def test_first_runs_are_spread_over_the_interval(self) -> None:
        """500 jobs do not fire at once: first runs spread across the first interval."""
        rec = Recorder()
        sched = _scheduler(rec)

        async def nothing() -> None: ...

        now = time.time()
        for i in range(500):
            sched.add(f"j{i}", nothing, Schedule(interval=10))
        sched.start()
        # Phases are fixed per name: the first slot comes within one interval of start.
        after = time.time()
        try:
            firsts = sorted(sched.next_run(f"j{i}") or 0 for i in range(500))
        finally:
            sched.shutdown()
        assert now <= firsts[0] and firsts[-1] <= after + 10 + 0.1  # 100 ms start slots
        # Roughly uniform: each second of the interval gets some of them.
        buckets = {int(t - now) for t in firsts}
        assert buckets >= set(range(10))

    async def test_overlapping_run_is_skipped_and_counted(self) -> None:
        """A run still going when the next is due makes that next run skipped ('overlap')."""
        rec = Recorder()
        sched = _scheduler(rec)
        started = 0
        release = asyncio.Event()

        async def slow() -> None:
            nonlocal started
            started += 1
            await release.wait()

        sched.add("slow", slow, Schedule(interval=0.2))
        sched.start()
        try:
            await asyncio.sleep(1.3)
        finally:
            release.set()
            sched.shutdown()
        assert started == 1
        assert rec.skipped("overlap") >= 3
        assert rec.skipped("coalesced") == 0  # each skipped run is counted once

    async def test_stalled_loop_coalesces_and_counts(self) -> None:
        """After the loop stalls, piled-up runs collapse into one late run; the
        collapsed ones are counted as 'coalesced', and the lag is reported."""
        rec = Recorder()
        sched = _scheduler(rec)
        runs: list[float] = []

        async def quick() -> None:
            runs.append(time.monotonic())

        sched.add("quick", quick, Schedule(interval=0.2))
        sched.start()
        try:
            while not runs:
                await asyncio.sleep(0.01)
            time.sleep(1.1)  # block the event loop: ~5 due times pass
            unblocked = time.monotonic()
            await asyncio.sleep(0.15)
            # One late run right away, not five; then back on the 0.2 s grid.
            assert len([t for t in runs if unblocked <= t < unblocked + 0.05]) == 1
        finally:
            sched.shutdown()
        assert rec.skipped("coalesced") >= 3
        # The late run's lag is measured from its latest due time (within one interval).
        assert len(rec.lags) == len(runs) and all(0 <= lag < 0.3 for lag in rec.lags)

    async def test_remove_stops_a_job(self) -> None:
        """Removed jobs stop running."""
        rec = Recorder()
        sched = _scheduler(rec)
        runs = 0

        async def tick() -> None:
            nonlocal runs
            runs += 1

        sched.add("t", tick, Schedule(interval=0.1))
        sched.start()
        try:
            await asyncio.sleep(0.35)
            sched.remove("t")
            count = runs
            await asyncio.sleep(0.3)
        finally:
            sched.shutdown()
        assert count >= 1 and runs == count
        assert sched.keys() == set()

    async def test_cron_job_runs_at_its_fire_times(self) -> None:
        """A cron pair runs at the cron's fire times, and its next run is the next fire."""
        rec = Recorder()
        now = time.time()
        offset = (60 - now % 60) - 0.3  # the clock reads 0.3 s before a whole minute
        sched = Scheduler(on_skip=rec.skip, on_start=rec.start, clock=lambda: time.time() + offset)
        runs = 0

        async def tick() -> None:
            nonlocal runs
            runs += 1

        sched.add("c", tick, Schedule(cron="* * * * *"))
        due = sched.next_run("c")
        assert due is not None and due % 60 == 0
        sched.start()
        try:
            await asyncio.sleep(0.8)
        finally:
            sched.shutdown()
        assert runs == 1
        assert sched.next_run("c") == due + 60
        assert rec.skips == [] and all(0 <= lag < 0.3 for lag in rec.lags)

    async def test_cron_run_later_than_its_grace_is_missed(self) -> None:
        """A cron slot found more than 60 s late is not run: it is counted 'missed'."""
        rec = Recorder()
        now = time.time()
        offset = (3600 - now % 3600) - 0.3  # just before a whole hour
        sched = Scheduler(on_skip=rec.skip, on_start=rec.start, clock=lambda: time.time() + offset)
        runs = 0

        async def tick() -> None:
            nonlocal runs
            runs += 1

        sched.add("hourly", tick, Schedule(cron="0 * * * *"))
        due = sched.next_run("hourly")
        assert due is not None
        offset += 61.3  # the process was stopped past the fire time and its grace
        sched.start()
        try:
            await asyncio.sleep(0.2)
        finally:
            sched.shutdown()
        assert runs == 0
        assert rec.skipped("missed") == 1
        assert sched.next_run("hourly") == due + 3600
