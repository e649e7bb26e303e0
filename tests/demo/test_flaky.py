"""The demo shop's "flaky" chaos mode: a share of requests fails at random."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from synthmon_demo import RunningShop, ShopState, serve


@pytest.fixture
async def shop() -> AsyncIterator[RunningShop]:
    # Seeded: the share of failures is the same on every run of the test.
    async with serve(state=ShopState(rng=random.Random(4))) as running:
        yield running


async def failures(shop: RunningShop, rate: float, n: int = 400) -> int:
    async with httpx.AsyncClient(base_url=shop.url) as client:
        r = await client.post("/_chaos", json={"mode": "flaky", "rate": rate})
        r.raise_for_status()
        codes = [(await client.get("/healthz")).status_code for _ in range(n)]
    assert set(codes) <= {200, 500}
    return codes.count(500)


class TestFlakyMode:
    async def test_fails_about_the_given_share(self, shop: RunningShop) -> None:
        """rate=0.25 fails roughly a quarter of requests, not none and not all."""
        assert 60 <= await failures(shop, 0.25) <= 140

    async def test_rate_zero_and_one(self, shop: RunningShop) -> None:
        """rate=0 never fails, rate=1 always fails."""
        assert await failures(shop, 0.0, 50) == 0
        assert await failures(shop, 1.0, 50) == 50

    async def test_rate_is_reported(self, shop: RunningShop) -> None:
        """GET /_chaos shows the flaky rate."""
        async with httpx.AsyncClient(base_url=shop.url) as client:
            await client.post("/_chaos", json={"mode": "flaky", "rate": 0.05})
            assert (await client.get("/_chaos")).json() == {
                "mode": "flaky",
                "delay": 3.0,
                "paths": None,
                "rate": 0.05,
            }

    async def test_bad_rate_is_400(self, shop: RunningShop) -> None:
        """A rate outside 0..1 is refused with a message saying what is valid."""
        async with httpx.AsyncClient(base_url=shop.url) as client:
            r = await client.post("/_chaos", json={"mode": "flaky", "rate": 5})
        assert r.status_code == 400
        assert "rate must be a number from 0 to 1" in r.json()["error"]
