"""`location = "..."`: every metric, log event, stored result and /api entry says where
the probe ran from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from synthmon.model import RunResult, Status
from synthmon.sinks.logs import LogSink
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape

JOURNEY = {
    "home.py": """
    from synthmon import journey

    @journey(interval="1s", timeout="1s")
    async def home(ctx):
        async with ctx.step("home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200
    """
}


def _result(location: str | None = None) -> RunResult:
    return RunResult(
        journey="home",
        target="demo",
        run_id="r1",
        trace_id="t1",
        status=Status.FAILURE,
        started_at=1.0,
        duration=0.5,
        location=location,
    )


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    warning = error = info


class TestLogSink:
    async def test_run_event_carries_location(self) -> None:
        """The run_finished log event names the location of the result."""
        rec = _Recorder()
        await LogSink(rec).emit(_result(location="us-east-1"))
        assert rec.events[0][0] == "run_finished"
        assert rec.events[0][1]["location"] == "us-east-1"


class TestDaemonLocation:
    async def test_results_api_and_metrics_carry_location(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With SYNTHMON_LOCATION=eu-west-1, results, /api/journeys and metrics say so."""
        monkeypatch.setenv("SYNTHMON_LOCATION", "eu-west-1")
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEY)
        assert settings.location == "eu-west-1"
        async with run_daemon(settings) as (daemon, collector):
            results = await collector.wait_for(lambda rs: len(rs) >= 1)
            assert results[0].location == "eu-west-1"
            await daemon.fanout.flush()
            async with httpx.AsyncClient() as client:
                body = (await client.get(f"{daemon.server.url}/api/journeys")).json()
            entry = body["journeys"][0]
            assert entry["location"] == "eu-west-1"
            assert entry["last_result"]["location"] == "eu-west-1"
            text = await scrape(daemon)
            assert (
                sample(text, "synthmon_journey_runs_total", journey="home", location="eu-west-1")
                is not None
            )
