from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from synthmon.safety.scrub import Scrubber
from synthmon_demo import RunningShop

CHROMIUM = "/usr/bin/chromium"
# Keep Chromium off the network; --no-sandbox only because tests run as root here.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--no-sandbox",
]


def _contains(path: Path, needle: bytes) -> bool:
    with zipfile.ZipFile(path) as z:
        return any(needle in z.read(name) for name in z.namelist())


class TestArtifactScrubbing:
    @pytest.mark.browser
    @pytest.mark.slow
    async def test_password_typed_with_fill_is_masked_in_trace(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A password typed with page.fill is in Playwright's raw trace; after
        scrub_file it is gone from every member and the zip still opens."""
        secret = "shopper1-pass"
        trace = tmp_path / "trace.zip"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context()
                await context.tracing.start(screenshots=False, snapshots=True)
                page = await context.new_page()
                await page.goto(f"{shop.url}/login")
                await page.fill("input[name=email]", "synthetic+shopper1@shop.example")
                await page.fill("input[name=password]", secret)
                await page.click("button[type=submit]")
                await page.wait_for_url("**/account")
                await context.tracing.stop(path=trace)
            finally:
                await browser.close()
        assert _contains(trace, secret.encode())  # the hazard is real
        assert Scrubber([secret]).scrub_file(trace)
        assert not _contains(trace, secret.encode())
        assert not _contains(trace, b"shopper1%2Dpass")
        with zipfile.ZipFile(trace) as z:
            assert z.testzip() is None
            assert any(n.endswith(".trace") for n in z.namelist())

    def test_text_artifacts_scrubbed_in_place(self, tmp_path: Path) -> None:
        """HTML snapshots and console logs lose the secret; clean files are untouched."""
        html = tmp_path / "page.html"
        html.write_text("<input value='s3cr3t-pw'>")
        clean = tmp_path / "console.log"
        clean.write_text("nothing here")
        scrub = Scrubber(["s3cr3t-pw"])
        assert scrub.scrub_file(html)
        assert not scrub.scrub_file(clean)
        assert html.read_text() == "<input value='***'>"
        assert clean.read_text() == "nothing here"
