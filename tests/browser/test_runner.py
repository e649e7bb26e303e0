"""The browser runner against the demo shop in a real headless Chromium."""

from __future__ import annotations

import asyncio
import os
import signal
import zipfile
from pathlib import Path

import pytest

from synthmon.journeys.dsl import journey
from synthmon.model import RunRequest, Status
from synthmon.runners.base import new_run_id
from synthmon_demo import RunningShop, serve
from tests.browser.conftest import (
    PASSWORD,
    MakeRunner,
    chromium_processes,
    example_journey,
    target_for,
)
from tests.conftest import set_chaos

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _files(paths: tuple[str, ...]) -> dict[str, Path]:
    return {Path(p).name: Path(p) for p in paths}


def _zip_text(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return b"".join(z.read(i) for i in z.infolist())


class TestCheckoutJourney:
    async def test_passes_with_step_timings(self, shop: RunningShop, make_runner: MakeRunner):
        """The example login -> cart -> checkout journey passes and each step records
        its page's TTFB, DOMContentLoaded and load."""
        runner = make_runner()
        result = await runner.run(
            RunRequest(example_journey(), target_for(shop.url), run_id=new_run_id())
        )
        assert result.status is Status.SUCCESS, result.error_message
        assert [s.name for s in result.steps] == ["login", "add to cart", "checkout"]
        for step in result.steps:
            phases = dict(step.timings)
            assert {"ttfb", "dom_content_loaded", "load"} <= phases.keys(), step
            assert 0 < phases["ttfb"] <= phases["load"]
        assert result.artifacts == ()
        # The journey's deferred cleanup cancelled its order through ctx.http.
        orders = [r for r in shop.state.seen() if r.method == "DELETE"]
        assert len(orders) == 1

    async def test_server_error_fails_the_step_with_artifacts(
        self, shop: RunningShop, make_runner: MakeRunner
    ):
        """A 500 on /checkout fails step 'checkout' and keeps a screenshot, a trace, the
        HTML and logs, with the typed password scrubbed out of everything."""
        runner = make_runner(scrub=lambda text: text.replace(PASSWORD, "[scrubbed]"))
        await set_chaos(shop, "error", paths=["/checkout"])
        result = await runner.run(
            RunRequest(example_journey(), target_for(shop.url), run_id=new_run_id())
        )
        assert result.status is Status.FAILURE
        assert result.failed_step == "checkout"
        assert "checkout page answered 500" in (result.error_message or "")
        files = _files(result.artifacts)
        assert {"screenshot.png", "trace.zip", "page.html", "console.txt", "network.txt"} <= set(
            files
        )
        assert files["screenshot.png"].stat().st_size > 0
        assert files["trace.zip"].stat().st_size > 0
        assert files["screenshot.png"].parent.name == result.run_id
        assert files["screenshot.png"].parent.parent.name == "browser_checkout"
        assert "HTTP 500 GET" in files["network.txt"].read_text()
        assert "internal error (chaos)" in files["page.html"].read_text()
        # The trace recorded page.fill("#password", ...): the scrubber got to it.
        trace = _zip_text(files["trace.zip"])
        assert b"[scrubbed]" in trace
        assert PASSWORD.encode() not in trace

    async def test_slow_page_times_out_in_its_step(
        self, shop: RunningShop, make_runner: MakeRunner
    ):
        """A product page slower than the journey's timeout ends as timeout in step
        'add to cart', with a screenshot and trace."""
        runner = make_runner()
        await set_chaos(shop, "slow", delay=30, paths=["/products"])
        result = await runner.run(
            RunRequest(example_journey(timeout=8.0), target_for(shop.url), run_id=new_run_id())
        )
        assert result.status is Status.TIMEOUT
        assert result.failed_step == "add to cart"
        assert "8s timeout" in (result.error_message or "")
        files = _files(result.artifacts)
        assert files["screenshot.png"].stat().st_size > 0
        assert files["trace.zip"].stat().st_size > 0

    async def test_hung_request_times_out_and_closes_its_context(
        self, shop: RunningShop, make_runner: MakeRunner
    ):
        """A request that never answers ends the run at its timeout naming the step,
        and the run's browser context is closed afterwards."""
        runner = make_runner()
        await set_chaos(shop, "hang", paths=["/orders", "/checkout"])
        result = await runner.run(
            RunRequest(example_journey(timeout=8.0), target_for(shop.url), run_id=new_run_id())
        )
        assert result.status is Status.TIMEOUT
        assert result.failed_step == "checkout"
        files = _files(result.artifacts)
        assert files["screenshot.png"].stat().st_size > 0
        assert files["trace.zip"].stat().st_size > 0
        browser = runner.pool._browser
        assert browser is not None
        assert browser.contexts == []


class TestCrashRecovery:
    async def test_killed_chromium_is_browser_crash_and_next_run_passes(
        self, shop: RunningShop, make_runner: MakeRunner
    ):
        """SIGKILL of Chromium mid-run records error 'browser_crash' (not a target
        failure), leaves none of its processes behind, and the next run passes."""
        runner = make_runner()
        await set_chaos(shop, "hang", paths=["/products"])
        run = asyncio.create_task(
            runner.run(
                RunRequest(example_journey(timeout=60.0), target_for(shop.url), run_id=new_run_id())
            )
        )
        # The shop only records requests (no event to await); then the run is hanging.
        # Deadlines are generous: Chromium starts and logs in slowly on a loaded machine.
        async with asyncio.timeout(60):
            while not shop.state.seen("/products"):
                assert not run.done(), run.result()
                await asyncio.sleep(0.05)
        pids = [p.pid for p in runner.pool.process_tree()]
        assert pids
        os.kill(pids[0], signal.SIGKILL)
        result = await asyncio.wait_for(run, 60)
        assert result.status is Status.ERROR
        assert result.reason == "browser_crash"
        assert result.failed_step == "add to cart"
        assert not result.status.is_target_failure
        await runner.pool.settled()
        assert chromium_processes(pids) == []
        await set_chaos(shop, "ok")
        again = await runner.run(
            RunRequest(example_journey(), target_for(shop.url), run_id=new_run_id())
        )
        assert again.status is Status.SUCCESS, again.error_message
        assert runner.pool.launches == 2


class TestTagging:
    async def test_synthetic_headers_reach_first_party_requests_only(self, make_runner: MakeRunner):
        """Synthetic header, User-Agent suffix, traceparent and extra headers go to the
        target's own requests; the third-party pixel gets none of them."""
        # Same machine, other host name: allowed_hosts is {"127.0.0.1"}.
        async with (
            serve() as third,
            serve(third_party_origin=f"http://localhost:{third.port}") as shop,
        ):
            await self._visit_products(make_runner, shop)
            first = shop.state.seen()
            assert {"/products", "/static/app.js"} <= {r.path for r in first}
            for req in first:
                assert req.headers.get("x-synthetic-monitor") == "synthmon", req.path
                assert req.headers["user-agent"].endswith(" synthmon/test"), req.path
                assert req.headers.get("x-synthetic-account") == "shopper1", req.path
                assert req.headers["traceparent"].split("-")[1] == self.run_id
            pixel = third.state.seen("/static/pixel.gif")
            assert len(pixel) == 1
            assert "x-synthetic-monitor" not in pixel[0].headers
            assert "traceparent" not in pixel[0].headers
            assert "synthmon" not in pixel[0].headers.get("user-agent", "")

    async def _visit_products(self, make_runner: MakeRunner, shop: RunningShop) -> None:
        @journey(kind="browser", timeout="15s")
        async def products(ctx) -> None:  # type: ignore[no-untyped-def]
            async with ctx.step("products"):
                await ctx.page.goto("/products")
                await ctx.page.wait_for_load_state("load")

        self.run_id = new_run_id()
        result = await make_runner().run(
            RunRequest(
                products,
                target_for(shop.url),
                run_id=self.run_id,
                extra_headers=[("X-Synthetic-Account", "shopper1")],
            )
        )
        assert result.status is Status.SUCCESS, result.error_message

    async def test_navigation_to_other_host_is_blocked(
        self, shop: RunningShop, make_runner: MakeRunner
    ):
        """page.goto to a host outside allowed_hosts is never sent and fails the run
        with HostNotAllowedError naming the URL."""
        async with serve() as other:
            url = f"http://localhost:{other.port}/products"

            @journey(kind="browser", timeout="15s")
            async def wander(ctx) -> None:  # type: ignore[no-untyped-def]
                async with ctx.step("leave"):
                    await ctx.page.goto(url)

            result = await make_runner().run(
                RunRequest(wander, target_for(shop.url), run_id=new_run_id())
            )
            assert result.status is Status.ERROR
            assert result.error_type == "HostNotAllowedError"
            assert url in (result.error_message or "")
            assert "allowed_hosts" in (result.error_message or "")
            assert result.failed_step == "leave"
            assert other.state.seen() == []

    async def test_block_third_party_keeps_subresources_away(self, make_runner: MakeRunner):
        """With block_third_party the page still loads but the third-party pixel is
        never requested."""
        async with (
            serve() as third,
            serve(third_party_origin=f"http://localhost:{third.port}") as shop,
        ):

            @journey(kind="browser", timeout="15s")
            async def products(ctx) -> None:  # type: ignore[no-untyped-def]
                async with ctx.step("products"):
                    await ctx.page.goto("/products")

            result = await make_runner().run(
                RunRequest(
                    products, target_for(shop.url, block_third_party=True), run_id=new_run_id()
                )
            )
            assert result.status is Status.SUCCESS, result.error_message
            assert shop.state.seen("/products")
            assert third.state.seen() == []


class TestRecycling:
    async def test_recycle_waits_for_runs_in_flight(
        self, shop: RunningShop, make_runner: MakeRunner
    ):
        """With recycle_after_runs=1 the browser is relaunched between runs, but never
        under a run in flight: overlapping runs all pass and the old browser is gone."""

        @journey(kind="browser", timeout="20s")
        async def linger(ctx) -> None:  # type: ignore[no-untyped-def]
            async with ctx.step("home"):
                await ctx.page.goto("/")
                await asyncio.sleep(1)
                assert await ctx.page.title() == "Home - Demo Shop"

        runner = make_runner(pool={"recycle_after_runs": 1})
        target = target_for(shop.url)
        first = await runner.run(RunRequest(linger, target, run_id=new_run_id()))
        assert first.status is Status.SUCCESS, first.error_message
        old = [p.pid for p in runner.pool.process_tree()]
        results = await asyncio.gather(
            *(runner.run(RunRequest(linger, target, run_id=new_run_id())) for _ in range(3))
        )
        assert [r.status for r in results] == [Status.SUCCESS] * 3, results
        assert runner.pool.launches >= 3
        await runner.pool.settled()
        assert chromium_processes(old) == []
