"""`ctx.shadow`: the same request to two targets, compared (branch by abstraction),
through the daemon against two demo shops."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from synthmon.model import Status
from synthmon_demo import RunningShop, serve
from tests.harness import make_settings, run_daemon, sample, scrape

JOURNEYS = {
    "shadowed.py": """
    from synthmon import journey

    @journey(interval="1m", timeout="5s", targets=["old"])
    async def catalog(ctx):
        async with ctx.step("search"):
            r = await ctx.shadow.get("/api/products", params={"q": "mug"}, compare_to="new")
            assert r.status_code == 200
        async with ctx.step("after"):
            assert (await ctx.http.get("/")).status_code == 200

    @journey(interval="1m", timeout="5s", targets=["old"])
    async def catalog_ignoring_prices(ctx):
        async with ctx.step("search"):
            await ctx.shadow.get(
                "/api/products", params={"q": "mug"}, compare_to="new",
                ignore=["$.items[*].price_cents"],
            )

    @journey(interval="1m", timeout="5s", targets=["old"])
    async def posts_twice(ctx):
        async with ctx.step("login"):
            await ctx.shadow.request("POST", "/api/login", compare_to="new", json={})
    """
}


@pytest.fixture
async def new() -> AsyncIterator[RunningShop]:
    async with serve() as running:
        yield running


def _settings(tmp_path: Path, old: RunningShop, new: RunningShop):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, targets={"old": old.url, "new": new.url}, journeys=JOURNEYS)


class TestShadow:
    async def test_identical_answers_pass(
        self, tmp_path: Path, shop: RunningShop, new: RunningShop
    ) -> None:
        """Both targets answer alike: the shadow step passes, no mismatch is counted."""
        async with run_daemon(_settings(tmp_path, shop, new)) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["catalog@old"])
            assert result.status is Status.SUCCESS, result.error_message
            assert result.shadow_mismatches == ()
            assert len(new.state.seen("/api/products")) == 1  # the shadow request went there

    async def test_changed_field_is_a_soft_failure_with_a_diff_and_counted(
        self, tmp_path: Path, shop: RunningShop, new: RunningShop
    ) -> None:
        """The new backend prices a mug differently: the run fails softly at the shadow
        step with a readable diff, later steps still run, the mismatch is counted."""
        mug = new.state.products[1]
        new.state.products = {**new.state.products, 1: dataclasses.replace(mug, price_cents=999)}
        async with run_daemon(_settings(tmp_path, shop, new)) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["catalog@old"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert result.status is Status.FAILURE
        assert result.failed_step == "search / shadow GET /api/products vs new"
        assert "price_cents" in (result.error_message or "")
        assert "1200" in (result.error_message or "") and "999" in (result.error_message or "")
        assert [s.name for s in result.steps][-1] == "after"  # the journey went on
        assert (
            sample(
                text,
                "synthmon_shadow_mismatches_total",
                journey="catalog",
                target="old",
                compare_to="new",
            )
            == 1
        )

    async def test_ignored_field_is_not_reported(
        self, tmp_path: Path, shop: RunningShop, new: RunningShop
    ) -> None:
        """A difference only under an ignore= JSONPath is no mismatch."""
        mug = new.state.products[1]
        new.state.products = {**new.state.products, 1: dataclasses.replace(mug, price_cents=999)}
        async with run_daemon(_settings(tmp_path, shop, new)) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["catalog_ignoring_prices@old"])
        assert result.status is Status.SUCCESS, result.error_message

    async def test_unsafe_method_is_refused_and_never_sent(
        self, tmp_path: Path, shop: RunningShop, new: RunningShop
    ) -> None:
        """A POST is not sent twice: the run ends as a journey error saying why."""
        async with run_daemon(_settings(tmp_path, shop, new)) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["posts_twice@old"])
        assert result.status is Status.ERROR
        assert "refused" in (result.error_message or "") and "unsafe=True" in (
            result.error_message or ""
        )
        assert new.state.seen("/api/login") == [] and shop.state.seen("/api/login") == []
