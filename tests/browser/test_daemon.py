"""Browser journeys inside a real daemon: wiring, readiness, metrics, shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from synthmon.model import Kind, Status
from synthmon.runners.browser.runner import BrowserRunner
from synthmon_demo import RunningShop
from tests.browser.conftest import NO_SANDBOX, chromium_processes
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BROWSER_JOURNEY = """
from synthmon import Context, journey

@journey(kind="browser", interval="1h", timeout="15s")
async def products_page(ctx: Context) -> None:
    async with ctx.step("products"):
        r = await ctx.page.goto("/products")
        assert r is not None and r.status == 200, f"products answered {r and r.status}"
"""
HTTP_JOURNEY = """
from synthmon import Context, journey

@journey(interval="1h", timeout="5s")
async def home(ctx: Context) -> None:
    async with ctx.step("home"):
        (await ctx.http.get("/")).raise_for_status()
"""
SLOW_JOURNEYS = """
import asyncio
from synthmon import Context, journey

@journey(kind="browser", interval="1h", timeout="20s")
async def holds_the_slot(ctx: Context) -> None:
    await ctx.page.goto("/")
    await asyncio.sleep(6)

@journey(kind="browser", interval="1h", timeout="2s")
async def wants_a_slot(ctx: Context) -> None:
    await ctx.page.goto("/")
"""


def _browser_toml(**extra: object) -> str:
    lines = ["[browser]", f"no_sandbox = {str(NO_SANDBOX).lower()}"]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


async def _get(base_url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.get(path)


class TestBrowserInDaemon:
    async def test_runs_exports_metrics_serves_artifacts_and_leaves_no_chromium(
        self, tmp_path: Path, shop: RunningShop
    ):
        """A browser journey runs in the daemon, its navigation timings and the pool
        show in /metrics, a failure's screenshot is served under /artifacts/, and after
        shutdown none of the browser's processes is left."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"products.py": BROWSER_JOURNEY},
            extra_toml=_browser_toml(),
        )
        async with run_daemon(settings) as (daemon, _):
            pair = daemon.pairs["products_page@demo"]
            ok = await daemon.run_pair(*pair)
            assert ok.status is Status.SUCCESS, ok.error_message
            runner = daemon.runners[Kind.BROWSER]
            assert isinstance(runner, BrowserRunner)
            pids = [p.pid for p in runner.pool.process_tree()]
            assert pids
            await set_chaos(shop, "error", paths=["/products"])
            bad = await daemon.run_pair(*pair)
            assert bad.status is Status.FAILURE
            shot = next(p for p in bad.artifacts if p.endswith("screenshot.png"))
            await daemon.fanout.flush()  # the sinks run behind a queue
            text = await scrape(daemon)
            labels = {"journey": "products_page", "target": "demo", "step": "products"}
            assert sample(text, "synthmon_browser_navigation_seconds_count", phase="ttfb", **labels)
            assert sample(text, "synthmon_browser_launches_total", result="ok") == 1
            assert sample(text, "synthmon_browser_contexts_in_use") == 0
            async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                r = await client.get(f"/artifacts/products_page/{bad.run_id}/screenshot.png")
                assert r.status_code == 200
                assert r.content == await asyncio.to_thread(Path(shot).read_bytes)
                assert r.headers["content-type"] == "image/png"
                api = (await client.get("/api/journeys/products_page")).json()
                assert shot in api["journeys"][0]["last_result"]["artifacts"]
        assert chromium_processes(pids) == []
        assert chromium_processes() == []

    async def test_missing_chromium_is_browser_unavailable_and_http_still_runs(
        self, tmp_path: Path, shop: RunningShop
    ):
        """With no usable Chromium, browser runs are error 'browser_unavailable' with
        an install hint, /readyz says so, and HTTP journeys run as usual."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"products.py": BROWSER_JOURNEY, "home.py": HTTP_JOURNEY},
            extra_toml=_browser_toml(executable_path="/nonexistent/chromium"),
        )
        async with run_daemon(settings) as (daemon, _):
            async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                r = await client.get("/readyz")
                assert r.status_code == 503
                assert "no Chromium found" in r.json()["checks"]["browser_runner"]["error"]
            result = await daemon.run_pair(*daemon.pairs["products_page@demo"])
            assert result.status is Status.ERROR
            assert result.reason == "browser_unavailable"
            assert "/nonexistent/chromium" in (result.error_message or "")
            assert "apt-get install chromium" in (result.error_message or "")
            assert not result.status.is_target_failure
            http = await daemon.run_pair(*daemon.pairs["home@demo"])
            assert http.status is Status.SUCCESS

    async def test_without_browser_journeys_missing_chromium_keeps_daemon_ready(
        self, tmp_path: Path, shop: RunningShop
    ):
        """A daemon with only HTTP journeys is ready even when no Chromium exists."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"home.py": HTTP_JOURNEY},
            extra_toml=_browser_toml(executable_path="/nonexistent/chromium"),
        )
        async with run_daemon(settings) as (daemon, _):
            r = await _get(daemon.server.url, "/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["checks"]["browser_runner"]["needed"] is False

    async def test_run_waiting_longer_than_its_timeout_is_browser_exhausted(
        self, tmp_path: Path, shop: RunningShop
    ):
        """With every browser slot busy past a run's timeout, that run is recorded as
        error 'browser_exhausted' instead of queueing silently."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"slow.py": SLOW_JOURNEYS},
            extra_toml=_browser_toml(max_concurrency=1),
        )
        async with run_daemon(settings) as (daemon, _):
            holder = asyncio.create_task(daemon.run_pair(*daemon.pairs["holds_the_slot@demo"]))
            while not shop.state.seen("/"):  # the shop records, it has no event to await
                await asyncio.sleep(0.05)
            waiting = await daemon.run_pair(*daemon.pairs["wants_a_slot@demo"])
            assert waiting.status is Status.ERROR
            assert waiting.reason == "browser_exhausted"
            assert "max_concurrency" in (waiting.error_message or "")
            assert (await holder).status is Status.SUCCESS
