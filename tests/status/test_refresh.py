"""The pages behind `[server] read_auth` (the same rule as /api), refreshing in place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.status.conftest import chromium, row_states, scenario

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "read-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    work = tmp_path_factory.mktemp("refresh")
    async with scenario(work, status_page='refresh = "1s"', read_token=TOKEN) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


class TestAccess:
    async def test_pages_need_the_same_read_credentials_as_the_api(self, scene: Any) -> None:
        """With read_auth set, / and the journey page answer 401 without the token and
        200 with it, exactly as /api/journeys does."""
        async with httpx.AsyncClient(base_url=scene.url) as client:
            for path in ("/", "/journeys/checkout?target=shop", "/api/journeys"):
                assert (await client.get(path)).status_code == 401, path
                assert (await client.get(path, headers=AUTH)).status_code == 200, path


class TestRefreshInPlace:
    async def test_refresh_keeps_scroll_position_and_filters(
        self, scene: Any, browser: Browser
    ) -> None:
        """The open page fetches itself again every `refresh` and replaces its content
        in place: no navigation, same scroll position, same filters, new data."""
        context = await browser.new_context(
            viewport={"width": 1000, "height": 300}, extra_http_headers=AUTH
        )
        page = await context.new_page()
        await page.goto(scene.url + "/?severity=critical")
        await page.evaluate("window.notReloaded = true; window.scrollTo(0, 250)")
        before = await page.inner_text("[data-updated]")
        home_before = await page.locator("tr[data-pair='home@shop'] svg.spark").count()
        await scene.daemon.run_pair(*scene.daemon.pairs["home@shop"])
        await page.wait_for_function(
            "t => document.querySelector('[data-updated]').textContent !== t", arg=before
        )
        assert await page.evaluate("window.notReloaded") is True
        assert await page.evaluate("window.scrollY") == 250
        assert await page.input_value("select[name=severity]") == "critical"
        assert page.url.endswith("/?severity=critical")
        assert await row_states(page) == [("checkout", "failing"), ("home", "passing")]
        assert home_before == 1
        await context.close()

    async def test_a_failed_refresh_says_the_data_is_old(
        self, scene: Any, browser: Browser
    ) -> None:
        """When a refresh fails (here: the credentials are gone), the page says so
        instead of silently showing old data as current."""
        context = await browser.new_context(extra_http_headers=AUTH)
        page = await context.new_page()
        await page.goto(scene.url + "/")
        await context.set_extra_http_headers({})
        await page.wait_for_selector(".updated.stale")
        assert "refresh failed" in await page.inner_text("[data-updated]")
        await context.close()
