"""The HTTP runner against the real demo shop: outcomes, steps, tagging, host guard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from synthmon import Journey, RunResult, Status
from synthmon.journeys.loader import load_journeys
from synthmon.model import RunRequest, Target
from synthmon.runners.base import new_run_id
from synthmon.runners.http import HttpRunner
from synthmon.safety.ratelimit import RateLimits
from synthmon_demo import RunningShop
from tests.conftest import set_chaos
from tests.harness import write_journeys

UA = "synthmon/test (+https://example.invalid)"
NO_LIMITS = RateLimits(())  # no target has max_requests_per_second


def _target(shop: RunningShop, **kw: Any) -> Target:
    return Target(name="demo", base_url=shop.url, allowed_hosts=frozenset({"127.0.0.1"}), **kw)


def _journey(tmp_path: Path, source: str, name: str | None = None) -> Journey:
    write_journeys(tmp_path / "j", {"j.py": source})
    report = load_journeys(tmp_path / "j")
    assert not report.problems, report.problems
    return next(j for j in report.journeys if name is None or j.name == name)


async def _run(shop: RunningShop, journey: Journey, **kw: Any) -> RunResult:
    runner = HttpRunner(
        user_agent=UA, pace=NO_LIMITS.acquire, tag_headers=[("X-Synthetic-Monitor", "synthmon")]
    )
    return await runner.run(RunRequest(journey, _target(shop, **kw), new_run_id()))


BROWSE = """
    from synthmon import Context, journey

    @journey(interval="10s", timeout="2s")
    async def browse(ctx: Context) -> None:
        async with ctx.step("home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200, f"home answered {r.status_code}"
        async with ctx.step("search"):
            r = await ctx.http.get("/api/products", params={"q": "mug"})
            r.raise_for_status()
            assert len(r.json()["items"]) == 2
"""


class TestOutcomes:
    async def test_pass_records_each_step(self, shop: RunningShop, tmp_path: Path) -> None:
        """A passing journey is a success with one timed result per step."""
        result = await _run(shop, _journey(tmp_path, BROWSE))
        assert result.status is Status.SUCCESS, result.error_message
        assert [s.name for s in result.steps] == ["home", "search"]
        assert all(s.status is Status.SUCCESS and s.duration > 0 for s in result.steps)
        assert result.failed_step is None

    async def test_assertion_failure_names_step_and_line(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A failed assert is a failure naming the step, the message and the journey line."""
        await set_chaos(shop, "error", paths=["/api/products"])
        result = await _run(shop, _journey(tmp_path, BROWSE))
        assert result.status is Status.FAILURE
        assert result.failed_step == "search"
        assert result.error_type == "HTTPStatusError"
        assert "500" in (result.error_message or "")
        assert "/api/products?q=mug" in (result.error_message or "")
        assert "j.py:" in (result.error_message or "")
        assert "For more information" not in (result.error_message or "")

    async def test_bare_assert_quotes_the_source(self, shop: RunningShop, tmp_path: Path) -> None:
        """A bare assert without a message still says which check failed."""
        j = _journey(
            tmp_path,
            """
            from synthmon import Context, journey

            @journey
            async def bare(ctx: Context) -> None:
                async with ctx.step("count"):
                    r = await ctx.http.get("/api/products", params={"q": "mug"})
                    assert len(r.json()["items"]) == 3
            """,
        )
        result = await _run(shop, j)
        assert result.status is Status.FAILURE
        assert "assert len(r.json()['items']) == 3" in (result.error_message or "").replace(
            '"', "'"
        )

    async def test_hung_target_is_a_timeout_in_its_step(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A target that never answers ends the run at its timeout, naming the step."""
        await set_chaos(shop, "hang", paths=["/api/products"])
        t0 = time.monotonic()
        result = await _run(shop, _journey(tmp_path, BROWSE))
        elapsed = time.monotonic() - t0
        assert result.status is Status.TIMEOUT
        assert result.failed_step == "search"
        assert "2s timeout" in (result.error_message or "")
        assert elapsed < 2 + 1  # the promise: recorded within timeout + 1 s

    async def test_journey_stuck_in_await_times_out(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A journey stuck in its own await is cut off at its timeout."""
        j = _journey(
            tmp_path,
            """
            import asyncio
            from synthmon import Context, journey

            @journey(timeout="500ms", interval="5s")
            async def stuck(ctx: Context) -> None:
                async with ctx.step("wait forever"):
                    await asyncio.Event().wait()
            """,
        )
        result = await _run(shop, j)
        assert (result.status, result.failed_step) == (Status.TIMEOUT, "wait forever")

    async def test_down_target_is_a_failure(self, shop: RunningShop, tmp_path: Path) -> None:
        """A connection the target drops is a target failure, not a synthmon error."""
        await set_chaos(shop, "down")
        result = await _run(shop, _journey(tmp_path, BROWSE))
        assert (result.status, result.failed_step) == (Status.FAILURE, "home")
        assert "GET http://127.0.0.1" in (result.error_message or "")

    async def test_unexpected_exception_is_an_error(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A bug in the journey is an error with its type and message."""
        j = _journey(
            tmp_path,
            """
            from synthmon import Context, journey

            @journey
            async def buggy(ctx: Context) -> None:
                async with ctx.step("parse"):
                    {}["missing"]
            """,
        )
        result = await _run(shop, j)
        assert result.status is Status.ERROR
        assert (result.failed_step, result.error_type) == ("parse", "KeyError")
        assert result.reason is None

    async def test_soft_step_failure_continues(self, shop: RunningShop, tmp_path: Path) -> None:
        """A soft step's failure is recorded, the journey goes on, and the run fails."""
        j = _journey(
            tmp_path,
            """
            from synthmon import Context, journey

            @journey
            async def soft(ctx: Context) -> None:
                async with ctx.step("optional", soft=True):
                    assert False, "widget missing"
                async with ctx.step("main"):
                    r = await ctx.http.get("/")
                    assert r.status_code == 200
            """,
        )
        result = await _run(shop, j)
        assert [(s.name, s.status) for s in result.steps] == [
            ("optional", Status.FAILURE),
            ("main", Status.SUCCESS),
        ]
        assert (result.status, result.failed_step) == (Status.FAILURE, "optional")
        assert "widget missing" in (result.error_message or "")

    async def test_runs_are_isolated(self, shop: RunningShop, tmp_path: Path) -> None:
        """Each run gets fresh cookies: a session from one run is gone in the next."""
        j = _journey(
            tmp_path,
            """
            from synthmon import Context, journey

            @journey
            async def cookie(ctx: Context) -> None:
                async with ctx.step("cart"):
                    r = await ctx.http.get("/api/cart")
                    assert r.status_code == 401, "cart visible without logging in"
                async with ctx.step("login"):
                    r = await ctx.http.post("/api/login", json={
                        "username": "synthetic+shopper1@shop.example",
                        "password": "shopper1-pass"})
                    assert r.status_code == 200
            """,
        )
        first = await _run(shop, j)
        second = await _run(shop, j)
        assert (first.status, second.status) == (Status.SUCCESS, Status.SUCCESS)


class TestTagging:
    async def test_requests_carry_synthetic_tags(self, shop: RunningShop, tmp_path: Path) -> None:
        """Every request names synthmon in the User-Agent, carries the synthetic header and
        a traceparent whose trace id is the run id."""
        result = await _run(shop, _journey(tmp_path, BROWSE))
        seen = shop.state.seen()
        assert len(seen) == 2
        for req in seen:
            assert req.headers["user-agent"] == UA
            assert req.headers["x-synthetic-monitor"] == "synthmon"
            version, trace_id, span_id, flags = req.headers["traceparent"].split("-")
            assert (version, trace_id, flags) == ("00", result.run_id, "01")
            assert len(span_id) == 16
        assert result.trace_id == result.run_id

    async def test_host_outside_allowed_hosts_is_never_contacted(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A request to a host the target does not allow fails the run and is never sent."""
        port = shop.port
        j = _journey(
            tmp_path,
            f"""
            from synthmon import Context, journey

            @journey
            async def leak(ctx: Context) -> None:
                async with ctx.step("elsewhere"):
                    await ctx.http.get("http://localhost:{port}/api/products")
            """,
        )
        result = await _run(shop, j)
        assert (result.status, result.failed_step) == (Status.ERROR, "elsewhere")
        assert "not in the target's allowed_hosts" in (result.error_message or "")
        assert "localhost" in (result.error_message or "")
        assert shop.state.seen() == []

    async def test_redirect_to_other_host_is_blocked(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Allowed hosts also apply to redirects: the redirect target is never contacted."""
        from aiohttp import web

        async def bounce(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"http://localhost:{shop.port}/api/products")

        app = web.Application()
        app.router.add_get("/go", bounce)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            j = _journey(
                tmp_path,
                """
                from synthmon import Context, journey

                @journey
                async def hop(ctx: Context) -> None:
                    async with ctx.step("follow"):
                        await ctx.http.get("/go")
                """,
            )
            target = Target(
                name="demo",
                base_url=f"http://127.0.0.1:{port}",
                allowed_hosts=frozenset({"127.0.0.1"}),
            )
            result = await HttpRunner(user_agent=UA, pace=NO_LIMITS.acquire).run(
                RunRequest(j, target, new_run_id())
            )
        finally:
            await runner.cleanup()
        assert (result.status, result.failed_step) == (Status.ERROR, "follow")
        assert f"http://localhost:{shop.port}/api/products blocked" in (result.error_message or "")
        assert shop.state.seen() == []


@pytest.mark.parametrize("hosts", [["*.example.com"]])
def test_wildcard_allowed_hosts(hosts: list[str]) -> None:
    """'*.example.com' allows subdomains but not the bare domain's lookalikes."""
    t = Target(name="t", base_url="https://a.example.com", allowed_hosts=frozenset(hosts))
    assert t.allows("a.example.com") and t.allows("B.Example.com.")
    assert not t.allows("example.com.evil.test") and not t.allows("badexample.com")
