from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from synthmon.model import RunSource, Status
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape

from .conftest import ACCOUNTS_TOML

CLEANUP_JOURNEYS = {
    "orders.py": """
        import asyncio
        from synthmon import Context, journey

        async def place_order(ctx):
            r = await ctx.http.post("/api/login", json={
                "username": ctx.account.username,
                "password": ctx.account.password.get_secret_value(),
            })
            r.raise_for_status()
            (await ctx.http.post("/api/cart", json={"product_id": 1})).raise_for_status()
            r = await ctx.http.post("/api/checkout")
            r.raise_for_status()
            order_id = r.json()["order_id"]

            async def cancel():
                (await ctx.http.delete(f"/api/orders/{order_id}")).raise_for_status()

            ctx.defer(cancel)

        @journey(interval="1h", timeout="5s", account="shopper")
        async def order_pass(ctx: Context) -> None:
            await place_order(ctx)

        @journey(interval="1h", timeout="5s", account="shopper")
        async def order_fail(ctx: Context) -> None:
            await place_order(ctx)
            assert False, "order page looked wrong"

        @journey(interval="1h", timeout="1s", account="shopper")
        async def order_timeout(ctx: Context) -> None:
            await place_order(ctx)
            await asyncio.sleep(10)

        async def broken_cleanup(ctx: Context) -> None:
            raise RuntimeError("cleanup endpoint gone")

        @journey(interval="1h", timeout="5s", cleanup=broken_cleanup)
        async def cleanup_breaks(ctx: Context) -> None:
            async def also_broken():
                await asyncio.sleep(0)
                raise ValueError("nope")
            ctx.defer(also_broken)

        @journey(interval="1h", timeout="5s")
        async def source(ctx: Context) -> None:
            await ctx.http.get("/healthz", headers={"x-run-source": ctx.run_source.value})
    """
}


class TestCleanup:
    async def test_cleanup_runs_on_pass_fail_and_timeout(
        self, tmp_path: Path, shop: RunningShop, secret_env: dict[str, str]
    ) -> None:
        """The order a journey placed is cancelled by its deferred cleanup whether the
        run passed, failed or timed out, and the run's status is unchanged."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys=CLEANUP_JOURNEYS,
            extra_toml=ACCOUNTS_TOML,
        )
        async with run_daemon(settings) as (daemon, _):
            statuses = {}
            for name in ("order_pass", "order_fail", "order_timeout"):
                result = await daemon.run_pair(*daemon.pairs[f"{name}@demo"])
                statuses[name] = result.status
                assert result.cleanup_failures == 0
        assert statuses == {
            "order_pass": Status.SUCCESS,
            "order_fail": Status.FAILURE,
            "order_timeout": Status.TIMEOUT,
        }
        cancels = [r for r in shop.state.seen() if r.method == "DELETE"]
        assert len(cancels) == 3
        for r in cancels:
            order_id = int(r.path.rsplit("/", 1)[1])
            owners = [
                shop.state.order(order_id, f"synthetic+shopper{n}@shop.example") for n in (1, 2)
            ]
            assert [o.status for o in owners if o is not None] == ["cancelled"]

    async def test_cleanup_failures_are_counted_not_fatal(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """Failing cleanups leave the run passing and show in
        synthmon_journey_cleanup_failures_total."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=CLEANUP_JOURNEYS)
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["cleanup_breaks@demo"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert result.status is Status.SUCCESS
        assert result.cleanup_failures == 2
        assert (
            sample(
                text,
                "synthmon_journey_cleanup_failures_total",
                journey="cleanup_breaks",
                target="demo",
            )
            == 2
        )


class TestRunSource:
    async def test_journey_sees_where_it_runs(self, tmp_path: Path, shop: RunningShop) -> None:
        """ctx.run_source is "daemon" under the daemon and "test" when a test says so."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=CLEANUP_JOURNEYS)
        for source in (RunSource.DAEMON, RunSource.TEST):
            async with run_daemon(settings, run_source=source) as (daemon, _):
                await daemon.run_pair(*daemon.pairs["source@demo"])
        seen = [r.headers.get("x-run-source") for r in shop.state.seen("/healthz")]
        assert seen == ["daemon", "test"]


@asynccontextmanager
async def redirector(location: str) -> AsyncIterator[str]:
    """A loopback server that redirects every request to `location`."""

    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class TestTrafficLimits:
    async def test_redirect_to_other_host_is_blocked(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A redirect to a host outside allowed_hosts is never followed: the run errors
        naming the URL and the other host receives nothing."""
        elsewhere = f"http://localhost:{shop.port}/api/products"
        async with redirector(elsewhere) as url:
            settings = make_settings(
                tmp_path,
                targets={"site": url},
                journeys={
                    "r.py": """
                        from synthmon import journey
                        @journey(interval="1h", timeout="5s")
                        async def follow(ctx):
                            async with ctx.step("home"):
                                await ctx.http.get("/")
                    """
                },
            )
            async with run_daemon(settings) as (daemon, _):
                result = await daemon.run_pair(*daemon.pairs["follow@site"])
        assert result.status is Status.ERROR
        assert result.error_type == "HostNotAllowedError"
        assert "localhost" in (result.error_message or "")
        assert shop.state.seen() == []

    @pytest.mark.slow
    @pytest.mark.parametrize("workers", [0, 2], ids=["in_process", "workers"])
    async def test_rate_limit_holds_across_concurrent_runs(
        self, tmp_path: Path, shop: RunningShop, workers: int
    ) -> None:
        """Four journeys firing requests at once reach the shop at the target's
        max_requests_per_second (not all at once), as counted by the shop; with worker
        processes too, the daemon pacing every worker (docs/workers.md)."""
        journeys = {
            "burst.py": "from synthmon import journey\n"
            + "".join(
                f"""
@journey(interval="1h", timeout="20s")
async def burst{i}(ctx):
    for _ in range(4):
        (await ctx.http.get("/api/products")).raise_for_status()
"""
                for i in range(4)
            )
        }
        settings = make_settings(
            tmp_path,
            targets={},
            journeys=journeys,
            extra_toml=f'[targets.demo]\nbase_url = "{shop.url}"\nmax_requests_per_second = 4\n'
            f"[scheduler]\nworkers = {workers}\n",
        )
        async with run_daemon(settings) as (daemon, _):
            results = await asyncio.gather(
                *(daemon.run_pair(*daemon.pairs[f"burst{i}@demo"]) for i in range(4))
            )
        assert all(r.status is Status.SUCCESS for r in results), results
        stats = shop.state.stats("/api/products")
        assert stats.total == 16
        # Requests leave 0.25 s apart; scheduling jitter on this shared machine can
        # move one across a second boundary, hence +1. Unpaced, all 16 land at once.
        assert stats.max_per_second <= 4 + 1, stats.per_second


class TestPacer:
    async def test_concurrent_callers_are_spaced_by_one_over_rate(self) -> None:
        """Ten simultaneous requests at 5/s are let through 0.2 s apart."""
        from synthmon.safety.ratelimit import Pacer

        now = [100.0]

        async def fake_sleep(seconds: float) -> None:
            now[0] += seconds
            await asyncio.sleep(0)

        pacer = Pacer(5, clock=lambda: now[0], sleep=fake_sleep)
        granted: list[float] = []

        async def request() -> None:
            await pacer.acquire()
            granted.append(now[0])

        await asyncio.gather(*(request() for _ in range(10)))
        assert granted == pytest.approx([100.0 + 0.2 * i for i in range(10)])

    async def test_no_burst_after_a_stall(self) -> None:
        """When the process stalls while requests wait, they still leave one interval
        apart afterwards instead of all at once."""
        from synthmon.safety.ratelimit import Pacer

        now = [0.0]
        stalls = [3.0]  # the first wake-up comes 3 s late (a blocked event loop)

        async def late_sleep(seconds: float) -> None:
            now[0] += seconds + (stalls.pop() if stalls else 0.0)
            await asyncio.sleep(0)

        pacer = Pacer(4, clock=lambda: now[0], sleep=late_sleep)
        granted: list[float] = []

        async def request() -> None:
            await pacer.acquire()
            granted.append(now[0])

        await asyncio.gather(*(request() for _ in range(6)))
        gaps = [b - a for a, b in itertools.pairwise(granted)]
        assert min(gaps) >= 0.25 - 1e-9

    async def test_rate_limits_only_for_limited_targets(self) -> None:
        """Targets without max_requests_per_second are never held (no added latency);
        a limited one is."""
        from synthmon.model import Target
        from synthmon.safety.ratelimit import RateLimits

        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        limits = RateLimits(
            [
                Target("a", "http://a", frozenset({"a"}), max_requests_per_second=2),
                Target("b", "http://b", frozenset({"b"})),
            ],
            clock=lambda: 100.0,
            sleep=sleep,
        )
        for _ in range(3):
            await limits.acquire("b")
        assert slept == []
        await limits.acquire("a")
        await limits.acquire("a")
        assert slept == [0.5]


# Run by the test through run_pair; the 7-day interval keeps the scheduler's own run out
# of the test (its phase in 1 h fell inside the test once, and its fetches counted).
BROWSER_BURST = """
from synthmon import Context, journey

@journey(kind="browser", interval="7d", timeout="30s")
async def browser_burst(ctx: Context) -> None:
    async with ctx.step("burst"):
        await ctx.page.goto("/healthz")
        statuses = await ctx.page.evaluate(
            \"\"\"() => Promise.all(Array.from({length: 12}, (_, i) =>
                fetch('/api/products?q=' + i).then(r => r.status)))\"\"\"
        )
        assert statuses == [200] * 12, statuses
"""


class TestBrowserPacing:
    @pytest.mark.browser
    @pytest.mark.slow
    async def test_browser_run_in_the_daemon_keeps_the_target_rate(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A browser journey firing twelve fetches at once, run by the daemon, reaches
        the shop at no more than the target's max_requests_per_second (the shop's
        /_stats counts them)."""
        from tests.browser.conftest import NO_SANDBOX

        settings = make_settings(
            tmp_path,
            targets={},
            journeys={"burst.py": BROWSER_BURST},
            extra_toml=f"""
            [targets.demo]
            base_url = "{shop.url}"
            max_requests_per_second = 4
            [browser]
            no_sandbox = {str(NO_SANDBOX).lower()}
            """,
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["browser_burst@demo"])
        assert result.status is Status.SUCCESS, result.error_message
        async with httpx.AsyncClient() as client:
            stats = (
                await client.get(f"{shop.url}/_stats", params={"path": "/api/products"})
            ).json()
        assert stats["total"] == 12
        # Chromium adds its own send latency after the route lets a request go, so
        # one may cross a second boundary (+1). Unpaced, all 12 land in one second.
        assert stats["max_per_second"] <= 4 + 1, stats["per_second"]
