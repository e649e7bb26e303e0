"""The status page and the journey page in real headless Chromium, served by a daemon
built as `synthmon run` builds it, with a passing, a degraded, a failing (browser) and
a paused journey against the demo shop."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.loopback import WebhookReceiver
from tests.status.conftest import Requests, chromium, row_states, scenario, webhook_toml

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

JOURNEY = "/journeys/checkout?target=shop"


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(
    tmp_path_factory: pytest.TempPathFactory, hooks: WebhookReceiver
) -> AsyncIterator[Any]:
    work = tmp_path_factory.mktemp("pages")
    async with scenario(work, extra_toml=webhook_toml(work, hooks.url)) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


class TestStatusPage:
    async def test_failing_first_then_degraded_then_the_rest_with_state_words(
        self, scene: Any, browser: Browser
    ) -> None:
        """Rows are ordered failing, degraded, passing, paused, each with its state in words."""
        page = await browser.new_page()
        await page.goto(scene.url + "/")
        assert await row_states(page) == [
            ("checkout", "failing"),
            ("search", "degraded"),
            ("home", "passing"),
            ("newsletter", "paused"),
        ]
        # Colour is never the only signal: every state has an icon beside its word.
        assert await page.locator("table.pairs .state svg.icon").count() == 4
        await page.close()

    async def test_failing_pair_names_step_error_since_and_shows_its_screenshot(
        self, scene: Any, browser: Browser
    ) -> None:
        """The failing journey's card says the failed step, the error's first line and
        since when, links its trace, and its screenshot thumbnail loads."""
        page = await browser.new_page()
        await page.goto(scene.url + "/")
        card = page.locator("article.problem").first
        text = await card.inner_text()
        assert "checkout" in text and "failing" in text
        assert "add to cart" in text
        assert "Timeout 2000ms exceeded" in text
        assert "Since" in text and "Alert fired" in text
        thumb = card.locator("img.thumb")
        await thumb.wait_for()
        assert await thumb.evaluate("img => img.complete && img.naturalWidth > 0")
        trace_id = scene.results["checkout"].trace_id
        href = await card.get_by_role("link", name=re.compile("^trace ")).get_attribute("href")
        assert href == f"https://tempo.example/trace/{trace_id}"
        degraded = await page.locator("article.p-degraded").inner_text()
        assert "search" in degraded and "budget 150 ms" in degraded
        await page.close()

    async def test_every_link_on_both_pages_resolves(self, scene: Any, browser: Browser) -> None:
        """Every same-origin link of / and of the journey page answers 200; the others
        are exactly the configured runbook and trace-UI links."""
        page = await browser.new_page()
        external = set()
        for path in ("/", JOURNEY):
            await page.goto(scene.url + path)
            hrefs = await page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
            assert hrefs
            for href in set(hrefs):
                if href.startswith(scene.url):
                    r = await page.request.get(href)
                    assert r.status == 200, f"{href} on {path} answered {r.status}"
                else:
                    external.add(urlsplit(href).netloc)
        assert external == {"runbooks.example", "tempo.example"}
        await page.close()

    async def test_filters_narrow_the_rows_and_stay_in_the_url(
        self, scene: Any, browser: Browser
    ) -> None:
        """Choosing a state, tag or severity filter reloads with it in the query string,
        shows only matching rows and keeps the choice selected."""
        page = await browser.new_page()
        await page.goto(scene.url + "/")
        await page.select_option("select[name=state]", "failing")
        await page.wait_for_url(re.compile(r"state=failing"))
        assert await row_states(page) == [("checkout", "failing")]
        assert await page.input_value("select[name=state]") == "failing"
        await page.select_option("select[name=state]", "")
        await page.wait_for_url(re.compile(r"/(\?)?$"))
        await page.select_option("select[name=tag]", "search")
        await page.wait_for_url(re.compile(r"tag=search"))
        assert await row_states(page) == [("search", "degraded")]
        await page.goto(scene.url + "/?severity=critical")
        assert await row_states(page) == [("checkout", "failing"), ("home", "passing")]
        await page.goto(scene.url + "/?state=silenced")
        assert "No journey matches these filters" in await page.inner_text("main")
        await page.close()


class TestJourneyPage:
    async def test_alert_status_url_opens_this_journeys_page_for_that_target(
        self, scene: Any, browser: Browser, hooks: WebhookReceiver
    ) -> None:
        """The status_url of the alert the failing journey sent opens the journey page
        of that journey on that target, showing it failing."""
        fired = [a for a in hooks.alerts if a["journey"] == "checkout" and a["event"] == "trigger"]
        assert fired, f"no trigger for checkout among {hooks.alerts}"
        page = await browser.new_page()
        response = await page.goto(fired[0]["status_url"])
        assert response is not None and response.status == 200
        h1 = await page.inner_text("h1")
        assert "checkout" in h1 and "on shop" in h1 and "failing" in h1
        assert urlsplit(page.url).query == "target=shop"
        await page.close()

    async def test_failed_browser_run_shows_timeline_evidence_and_waterfall(
        self, scene: Any, browser: Browser
    ) -> None:
        """The journey page shows the incident timeline, the failed run's screenshot,
        console and network errors, a downloadable trace, the runs and the step
        waterfall with the failed step marked in words, and the open incident."""
        page = await browser.new_page()
        await page.goto(scene.url + JOURNEY)
        timeline = await page.inner_text("ol.timeline")
        assert "First failed attempt" in timeline and "Alert fired" in timeline
        assert "add to cart" in timeline
        shot = page.locator("img.shot")
        await shot.wait_for()
        assert await shot.evaluate("img => img.complete && img.naturalWidth > 0")
        text = await page.inner_text("main")
        for expected in ("Console errors", "Network errors", "playwright show-trace", "MTTR"):
            assert expected in text
        assert "A shopper can put a mug into the cart." in text
        assert "runbooks.example/checkout" in text
        trace = page.get_by_role("link", name="Playwright trace").first
        r = await page.request.get(scene.url + (await trace.get_attribute("href") or ""))
        assert r.status == 200 and r.headers["content-type"] == "application/zip"
        assert "add to cart — failed" in await page.inner_text("table.waterfall")
        assert "failed" in await page.inner_text("table.runs")
        assert "ongoing" in await page.inner_text("table.incidents")
        await page.close()

    async def test_unknown_journey_or_target_is_a_page_saying_so(
        self, scene: Any, browser: Browser
    ) -> None:
        """An unknown journey or a target it does not run against answers 404 in words."""
        page = await browser.new_page()
        r = await page.goto(scene.url + "/journeys/nope")
        assert r is not None and r.status == 404
        assert "No journey named 'nope'" in await page.inner_text("main")
        r = await page.goto(scene.url + "/journeys/checkout?target=staging")
        assert r is not None and r.status == 404
        assert "its targets: shop" in await page.inner_text("main")
        await page.close()


class TestBrowserRules:
    async def test_pages_request_nothing_off_the_daemons_origin(
        self, scene: Any, browser: Browser
    ) -> None:
        """Loading / and the journey page (scripts, styles, images, icon) requests only
        URLs on the daemon's own origin."""
        for path in ("/", JOURNEY):
            page = await browser.new_page()
            seen = Requests(page)
            await page.goto(scene.url + path, wait_until="networkidle")
            assert len(seen.urls) >= 3  # the page, its CSS and script at least
            assert seen.off_origin(scene.url) == [], path
            await page.close()

    async def test_pages_work_with_javascript_off(self, scene: Any, browser: Browser) -> None:
        """With JavaScript off, both pages render in full and the filter form works
        through its Apply button."""
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await page.goto(scene.url + "/")
        assert [s for _, s in await row_states(page)] == [
            "failing",
            "degraded",
            "passing",
            "paused",
        ]
        await page.select_option("select[name=severity]", "warning")
        await page.click("form.filters button[type=submit]")
        await page.wait_for_url(re.compile(r"severity=warning"))
        assert await row_states(page) == [("search", "degraded")]
        await page.goto(scene.url + JOURNEY)
        assert "First failed attempt" in await page.inner_text("main")
        await context.close()

    async def test_readable_at_phone_width_in_the_dark_scheme(
        self, scene: Any, browser: Browser, tmp_path: Path
    ) -> None:
        """At 375 px with a dark colour scheme, neither page scrolls sideways, the
        background is dark and the state words are shown."""
        context = await browser.new_context(
            viewport={"width": 375, "height": 800}, color_scheme="dark"
        )
        page = await context.new_page()
        for path in ("/", JOURNEY):
            await page.goto(scene.url + path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width}px wide at 375px"
            bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert bg == "rgb(13, 17, 23)"
        await page.goto(scene.url + "/")
        word = page.locator("table.pairs .state .word").first
        assert await word.is_visible() and await word.inner_text() == "failing"
        await context.close()
