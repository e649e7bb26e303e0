"""`[status_page] public = true`: the page a company shows its customers, served by the
daemon with `[server] read_auth` set (so everything else stays private)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.status.conftest import Requests, chromium, row_states, scenario

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "read-token-for-tests"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    work = tmp_path_factory.mktemp("public")
    async with scenario(work, status_page="public = true", read_token=TOKEN) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


class TestPublicMode:
    async def test_shows_only_tagged_journeys_without_errors_artifacts_or_urls(
        self, scene: Any, browser: Browser
    ) -> None:
        """Without credentials, / lists only the journeys tagged `public`, with their
        state, but no failed step, error, artifact, trace link or target URL."""
        page = await browser.new_page()
        seen = Requests(page)
        r = await page.goto(scene.url + "/", wait_until="networkidle")
        assert r is not None and r.status == 200
        assert await row_states(page) == [("checkout", "failing"), ("home", "passing")]
        html = await page.content()
        for secret in (
            "add to cart",
            "Timeout",
            "/artifacts/",
            "tempo.example",
            scene.shop.url,
            "search",
            "newsletter",
            "<img",
        ):
            assert secret not in html, secret
        assert seen.off_origin(scene.url) == []
        await page.close()

    async def test_journey_page_is_public_for_tagged_journeys_only(
        self, scene: Any, browser: Browser
    ) -> None:
        """The tagged journey's page shows state and reliability without the error,
        evidence, runbook or target URL; an untagged journey's page does not exist."""
        page = await browser.new_page()
        r = await page.goto(scene.url + "/journeys/checkout?target=shop")
        assert r is not None and r.status == 200
        text = await page.inner_text("main")
        assert "failing" in text and "Reliability" in text and "Current incident" in text
        html = await page.content()
        for secret in ("add to cart", "Timeout", "/artifacts/", scene.shop.url, "runbooks."):
            assert secret not in html, secret
        r = await page.goto(scene.url + "/journeys/search?target=shop")
        assert r is not None and r.status == 404
        await page.close()

    async def test_only_the_pages_are_open_the_api_and_artifacts_keep_read_auth(
        self, scene: Any
    ) -> None:
        """Public mode opens /, /journeys/ and /static/ only: /api and /artifacts still
        need the read credentials."""
        async with httpx.AsyncClient(base_url=scene.url) as client:
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/static/status.css")).status_code == 200
            assert (await client.get("/api/journeys")).status_code == 401
            artifact = scene.results["checkout"].artifacts[0].split("/artifacts/", 1)[1]
            assert (await client.get(f"/artifacts/{artifact}")).status_code == 401
            authed = {"Authorization": f"Bearer {TOKEN}"}
            assert (await client.get("/api/journeys", headers=authed)).status_code == 200
