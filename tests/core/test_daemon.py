"""The daemon end to end against the real demo shop: scheduling, metrics, API, limits."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pytest
import structlog

from synthmon import Status
from synthmon_demo import RunningShop
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape

REPO = Path(__file__).resolve().parents[2]

FAST = """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s", tags=["smoke"])
    async def fast(ctx: Context) -> None:
        async with ctx.step("home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200
"""


class TestExampleJourneys:
    async def test_examples_pass_then_fail_at_the_right_step(
        self, shop: RunningShop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The shipped journeys pass against the demo shop and, with the fault switch
        flipped, fail naming the step that broke."""
        shutil.copytree(REPO / "journeys", tmp_path / "journeys")
        # api_checkout leases an account from the "shopper" pool (docs/safety.md).
        monkeypatch.setenv("T_SHOPPER_PASSWORD", "shopper1-pass")
        shopper = (
            '[[accounts]]\npool = "shopper"\nusername = "synthetic+shopper1@shop.example"\n'
            'password = { env = "T_SHOPPER_PASSWORD" }\n'
        )
        settings = make_settings(tmp_path, targets={"demo": shop.url}, extra_toml=shopper)
        async with run_daemon(settings) as (daemon, _):
            for key in sorted(daemon.pairs):
                journey, target = daemon.pairs[key]
                if journey.kind.value != "http":
                    continue
                ok = await daemon.run_pair(journey, target)
                assert ok.status is Status.SUCCESS, (key, ok.error_message)
            await set_chaos(shop, "error", paths=["/api/products"])
            bad = await daemon.run_pair(*daemon.pairs["browse_catalog@demo"])
            assert (bad.status, bad.failed_step) == (Status.FAILURE, "search")
            await set_chaos(shop, "error", paths=["/api/checkout"])
            bad = await daemon.run_pair(*daemon.pairs["api_checkout@demo"])
            assert (bad.status, bad.failed_step) == (Status.FAILURE, "checkout")


class TestScheduledRuns:
    async def test_metrics_api_and_probes(self, shop: RunningShop, tmp_path: Path) -> None:
        """Scheduled runs show up in /metrics, /api/journeys, and the probes answer."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"f.py": FAST})
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 2, timeout=5)
            await daemon.fanout.flush()
            text = await scrape(daemon)
            async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                health = await client.get("/healthz")
                ready = await client.get("/readyz")
                api = (await client.get("/api/journeys")).json()["journeys"]
                page = await client.get("/journeys/fast", follow_redirects=True)
        labels = {"journey": "fast", "target": "demo"}
        assert sample(text, "synthmon_journey_success", severity="critical", **labels) == 1
        assert (sample(text, "synthmon_journey_runs_total", result="success", **labels) or 0) >= 2
        assert sample(text, "synthmon_journey_runs_total", result="failure", **labels) == 0
        assert (sample(text, "synthmon_journey_duration_seconds_count", **labels) or 0) >= 2
        assert sample(text, "synthmon_journey_duration_seconds_bucket", le="30.0", **labels)
        assert sample(text, "synthmon_journey_step_success", step="home", **labels) == 1
        # Per-step histograms are opt-in ([metrics] step_histograms, docs/metrics.md).
        assert sample(text, "synthmon_journey_step_duration_seconds_count", **labels) is None
        assert sample(text, "synthmon_journey_last_run_timestamp_seconds", **labels)
        assert sample(text, "synthmon_journey_last_success_timestamp_seconds", **labels)
        assert sample(text, "synthmon_journey_consecutive_failures", **labels) == 0
        assert (
            sample(
                text,
                "synthmon_journey_info",
                journey="fast",
                severity="critical",
                kind="http",
                interval_seconds="1",
            )
            == 1
        )
        assert sample(text, "synthmon_journey_interval_seconds", journey="fast") == 1
        assert sample(text, "synthmon_scheduler_lag_seconds_count")
        assert sample(text, "synthmon_build_info") == 1
        assert sample(text, "synthmon_journeys_loaded") == 1
        assert "synthmon_event_loop_lag_seconds" in text
        assert (
            "synthmon_journey_skipped_runs_total" in text
            or "# TYPE synthmon_journey_skipped_runs counter" in text
        )
        assert (health.status_code, health.text.strip()) == (200, "ok")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        # Alert links land on the journey's HTML page (tests/status/ covers it in full).
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<h1>fast" in page.text
        [entry] = api
        assert entry["journey"] == "fast" and entry["target"] == "demo"
        assert entry["last_result"]["status"] == "success"
        assert entry["last_result"]["steps"][0]["name"] == "home"

    async def test_failure_is_counted_and_named(self, shop: RunningShop, tmp_path: Path) -> None:
        """A broken target turns the success gauge to 0 and counts consecutive failures."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"f.py": FAST})
        await set_chaos(shop, "error")
        async with run_daemon(settings) as (daemon, results):
            # Two counted runs: a retried attempt (critical journeys retry) is not one.
            await results.wait_for(lambda rs: sum(not r.retried for r in rs) >= 2, timeout=5)
            await daemon.fanout.flush()
            text = await scrape(daemon)
        labels = {"journey": "fast", "target": "demo"}
        assert sample(text, "synthmon_journey_success", severity="critical", **labels) == 0
        assert (sample(text, "synthmon_journey_consecutive_failures", **labels) or 0) >= 2
        assert results.results[0].failed_step == "home"

    async def test_hung_journey_does_not_delay_others(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A journey stuck on a hung target times out while the others keep their pace."""
        hung = """
            from synthmon import Context, journey

            @journey(interval="2s", timeout="1500ms")
            async def hung(ctx: Context) -> None:
                async with ctx.step("checkout"):
                    await ctx.http.post("/api/checkout")
        """
        await set_chaos(shop, "hang", paths=["/api/checkout"])
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"f.py": FAST, "h.py": hung}
        )
        async with run_daemon(settings) as (_, results):
            await results.wait_for(lambda rs: any(r.journey == "hung" for r in rs), timeout=6)
            fast_before = len(results.of("fast"))
            await asyncio.sleep(3)
            fast_after = len(results.of("fast"))
        [timeout, *_] = results.of("hung")
        assert (timeout.status, timeout.failed_step) == (Status.TIMEOUT, "checkout")
        assert timeout.duration < 1.5 + 1
        assert fast_after - fast_before >= 2
        assert all(r.status is Status.SUCCESS for r in results.of("fast"))

    async def test_target_concurrency_limit(self, shop: RunningShop, tmp_path: Path) -> None:
        """max_concurrency on a target caps in-flight runs against it."""
        marker = tmp_path / "max_in_flight"
        source = f"""
            import asyncio
            from pathlib import Path
            from synthmon import Context, journey

            state = {{"now": 0, "max": 0}}

            async def _work(ctx: Context) -> None:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
                Path({str(marker)!r}).write_text(str(state["max"]))
                try:
                    await asyncio.sleep(0.3)
                finally:
                    state["now"] -= 1

            @journey(interval="1s", timeout="1s")
            async def a(ctx: Context) -> None:
                await _work(ctx)

            @journey(interval="1s", timeout="1s")
            async def b(ctx: Context) -> None:
                await _work(ctx)

            @journey(interval="1s", timeout="1s")
            async def c(ctx: Context) -> None:
                await _work(ctx)
        """
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"limit.py": source},
            extra_toml="max_concurrency = 1\n",  # appended to the last [targets.demo]
        )
        assert settings.targets["demo"].max_concurrency == 1
        async with run_daemon(settings) as (_, results):
            await results.wait_for(lambda rs: len(rs) >= 6, timeout=10)
        assert marker.read_text() == "1"


class TestJourneyFiles:
    async def test_broken_file_is_reported_and_others_run(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A journey file that fails to import is reported; the others keep running."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"f.py": FAST, "broken.py": "import does_not_exist\n"},
        )
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1, timeout=5)
                text = await scrape(daemon)
                async with httpx.AsyncClient() as client:
                    ready = (await client.get(f"{daemon.server.url}/readyz")).json()
        broken = str(tmp_path / "journeys" / "broken.py")
        assert sample(text, "synthmon_journey_load_errors", file=broken) == 1
        errors = [e for e in logs if e["event"] == "journey_load_error"]
        assert errors and errors[0]["file"] == broken and errors[0]["line"] == 1
        assert "ModuleNotFoundError" in errors[0]["error"]
        assert ready["ready"] is True
        assert any("broken.py:1" in p for p in ready["checks"]["load_errors"])

    async def test_removed_journey_loses_its_series(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """When a journey disappears, its metric series are removed, not left stale."""
        other = FAST.replace("def fast", "def other")
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"f.py": FAST, "o.py": other}
        )
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: {r.journey for r in rs} == {"fast", "other"}, 6)
            await daemon.fanout.flush()
            assert 'journey="other"' in await scrape(daemon)
            (tmp_path / "journeys" / "o.py").unlink()
            daemon.reload()
            text = await scrape(daemon)
        assert 'journey="other"' not in text
        assert 'journey="fast"' in text


class TestRunLog:
    async def test_one_event_per_run(self, shop: RunningShop, tmp_path: Path) -> None:
        """Each run is one run_finished event with journey, target, ids, result and timing."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"f.py": FAST})
        await set_chaos(shop, "error")
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1, timeout=5)
                await daemon.fanout.flush()
        runs = [e for e in logs if e["event"] == "run_finished"]
        assert len(runs) == len(results.results)
        event = runs[0]
        assert event["log_level"] == "warning"
        assert {k: event[k] for k in ("journey", "target", "result", "failed_step")} == {
            "journey": "fast",
            "target": "demo",
            "result": "failure",
            "failed_step": "home",
        }
        assert event["run_id"] == event["trace_id"] == results.results[0].run_id
        assert event["duration_ms"] > 0
        assert event["error"].startswith("assertion failed at f.py:7: assert r.status_code == 200")
        assert "(last response: 500 from GET http://127.0.0.1" in event["error"]
        json.dumps(event)  # JSON-serialisable as is
