"""The fan-out inside a running daemon: a slow, failing or backed-up sink delays or
loses only its own results, is counted in synthmon_sink_problems, and never stalls
the scheduler or the other sinks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from synthmon.model import RunResult
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape

pytestmark = pytest.mark.slow

EVERY_SECOND = """
from synthmon import Context, journey

@journey(interval="1s", timeout="1s")
async def tick(ctx: Context) -> None:
    (await ctx.http.get("/healthz")).raise_for_status()
"""


class HangingSink:
    """Never finishes an emit until released; counts the results it was handed."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()

    async def emit(self, result: RunResult) -> None:
        self.started += 1
        await self.release.wait()


class FailingSink:
    """Raises on every result."""

    def __init__(self) -> None:
        self.calls = 0

    async def emit(self, result: RunResult) -> None:
        self.calls += 1
        raise RuntimeError("sink backend is down")


def _settings(tmp_path: Path, shop: RunningShop, sink_timeout: str):
    return make_settings(
        tmp_path,
        targets={"demo": shop.url},
        journeys={"tick.py": EVERY_SECOND},
        extra_toml=f'[scheduler]\nsink_timeout = "{sink_timeout}"\n',
    )


class TestFanout:
    async def test_hanging_sink_never_stalls_the_scheduler(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """With a sink that hangs on its first result (timeout 60 s), the daemon keeps
        running the 1 s journey and every other sink keeps receiving its results."""
        hanging = HangingSink()
        settings = _settings(tmp_path, shop, "60s")
        async with run_daemon(settings, extra_sinks=[("hanging", hanging)]) as (daemon, got):
            await got.wait_for(lambda rs: len(rs) >= 4, timeout=15)
            await daemon.fanout.flush("metrics")
            text = await scrape(daemon)
            started = hanging.started
            hanging.release.set()
        assert started == 1  # still on its first result while four runs went by
        runs = sample(text, "synthmon_journey_runs_total", journey="tick", result="success")
        assert runs is not None and runs >= 4

    async def test_backlog_of_a_hanging_sink_shows_in_its_queue_depth(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """synthmon_sink_queue_depth{sink} shows the results a hanging sink has not taken
        (the dashboard's "Sink queue depth"), and falls back to 0 once it catches up."""
        hanging = HangingSink()
        settings = _settings(tmp_path, shop, "60s")
        async with run_daemon(settings, extra_sinks=[("hanging", hanging)]) as (daemon, got):
            await got.wait_for(lambda rs: len(rs) >= 4, timeout=15)
            await daemon.fanout.flush("collector")
            backed_up = await scrape(daemon)
            hanging.release.set()
            await daemon.fanout.flush("hanging")
            drained = await scrape(daemon)
        queued = sample(backed_up, "synthmon_sink_queue_depth", sink="hanging")
        assert queued is not None and queued >= 3  # one is in its hands, the rest wait
        assert sample(backed_up, "synthmon_sink_queue_depth", sink="collector") == 0
        assert sample(drained, "synthmon_sink_queue_depth", sink="hanging") == 0

    async def test_slow_sink_times_out_counts_and_moves_on(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A sink slower than sink_timeout loses that result, counted as
        synthmon_sink_problems{problem="timeout"}, and gets the next ones."""
        hanging = HangingSink()
        settings = _settings(tmp_path, shop, "300ms")
        async with run_daemon(settings, extra_sinks=[("slow", hanging)]) as (daemon, got):
            await got.wait_for(lambda rs: len(rs) >= 3, timeout=15)
            await daemon.fanout.flush("slow")
            text = await scrape(daemon)
        timeouts = sample(text, "synthmon_sink_problems_total", sink="slow", problem="timeout")
        assert timeouts is not None and timeouts >= 2
        assert hanging.started >= 3

    async def test_failing_sink_is_counted_and_keeps_receiving(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A sink raising on every result is counted as problem="error" each time; its
        worker survives, and the other sinks get every result."""
        failing = FailingSink()
        settings = _settings(tmp_path, shop, "5s")
        async with run_daemon(settings, extra_sinks=[("failing", failing)]) as (daemon, got):
            await got.wait_for(lambda rs: len(rs) >= 3, timeout=15)
            await daemon.fanout.flush()
            text = await scrape(daemon)
            delivered = len(got.results)
        errors = sample(text, "synthmon_sink_problems_total", sink="failing", problem="error")
        assert errors is not None and errors == failing.calls >= 3
        assert delivered >= 3

    async def test_full_queue_drops_only_for_that_sink(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """When a hanging sink's queue (10,000 results) is full, further results are
        dropped for that sink only, counted as problem="dropped"; emit never blocks
        and the other sinks get everything."""
        hanging = HangingSink()
        settings = _settings(tmp_path, shop, "60s")
        async with run_daemon(settings, extra_sinks=[("hanging", hanging)]) as (daemon, got):
            first = (await got.wait_for(lambda rs: len(rs) >= 1, timeout=15))[0]
            assert hanging.started == 1
            daemon.scheduler.pause()  # only our results from here on
            await asyncio.sleep(1.5)  # a run in flight (timeout 1 s) finishes
            await daemon.fanout.flush("collector")
            before = len(got.results)
            extra = 10_010
            for i in range(extra):
                daemon.fanout.emit(dataclasses.replace(first, run_id=f"copy{i}"))
                if i % 100 == 99:
                    await asyncio.sleep(0)  # let the fast sinks drain
            await daemon.fanout.flush("collector")
            text = await scrape(daemon)
            delivered = len(got.results) - before
            hanging.release.set()
        dropped = sample(text, "synthmon_sink_problems_total", sink="hanging", problem="dropped")
        # One result is with the hanging sink, 10,000 wait in its queue; the rest drop.
        assert dropped == before + extra - 1 - 10_000
        assert delivered == extra
        assert not sample(text, "synthmon_sink_problems_total", sink="collector")
