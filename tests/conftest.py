from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from synthmon_demo import RunningShop, serve


@pytest.fixture
async def shop() -> AsyncIterator[RunningShop]:
    """The bundled demo shop on a free loopback port."""
    async with serve() as running:
        yield running


async def set_chaos(shop: RunningShop, mode: str, **extra: object) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{shop.url}/_chaos", json={"mode": mode, **extra})
        r.raise_for_status()
