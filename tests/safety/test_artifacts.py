from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from synthmon.runners.browser.artifacts import (
    ArtifactStore,
    artifact_text,
    mask_credentials,
    scrub_zip,
)
from synthmon.safety.scrub import Scrubber, base64_cores
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
        """A password typed with page.fill is in Playwright's raw trace; after the
        runner's scrub_zip it is gone from every member and the zip still opens."""
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
        scrub_zip(trace, Scrubber([secret]))
        assert not _contains(trace, secret.encode())
        assert not _contains(trace, b"shopper1%2Dpass")
        with zipfile.ZipFile(trace) as z:
            assert z.testzip() is None
            assert any(n.endswith(".trace") for n in z.namelist())

    def test_text_artifacts_are_scrubbed_on_write(self, tmp_path: Path) -> None:
        """HTML snapshots and console logs are written without the secret or any
        Basic/Bearer credential; clean text is written as it is."""
        store = ArtifactStore(tmp_path)
        scrub = Scrubber(["s3cr3t-pw"])
        html = store.write_text(tmp_path, "page.html", "<input value='s3cr3t-pw'>", scrub)
        auth = store.write_text(tmp_path, "console.txt", "Authorization: Bearer eyJhbGci0", scrub)
        clean = store.write_text(tmp_path, "network.txt", "nothing here", scrub)
        assert html.read_text() == "<input value='***'>"
        assert auth.read_text() == "Authorization: Bearer ***"
        assert clean.read_text() == "nothing here"


class TestMaskCredentials:
    def test_credential_headers_masked_in_header_lists(self) -> None:
        """Playwright's {name, value} header entries lose the values of Authorization,
        Proxy-Authorization, Cookie and Set-Cookie, whatever their case; others stay."""
        headers = [
            {"name": n, "value": "v"}
            for n in ("Authorization", "proxy-authorization", "Cookie", "set-cookie", "Accept")
        ]
        masked = mask_credentials({"request": {"headers": headers}})["request"]["headers"]
        assert [h["value"] for h in masked] == ["***"] * 4 + ["v"]

    def test_cookies_and_http_credentials_masked(self) -> None:
        """Cookie values (add_cookies, network cookies), header mappings and the
        httpCredentials password are masked; names and usernames stay."""
        event = {
            "params": {"cookies": [{"name": "sid", "value": "abc", "url": "http://x"}]},
            "options": {"httpCredentials": {"username": "u", "password": "p"}},
            "headers": {"Authorization": "Basic dTpw", "Accept": "*/*"},
        }
        masked = mask_credentials(event)
        assert masked["params"]["cookies"] == [{"name": "sid", "value": "***", "url": "http://x"}]
        assert masked["options"]["httpCredentials"] == {"username": "u", "password": "***"}
        assert masked["headers"] == {"Authorization": "***", "Accept": "*/*"}

    def test_basic_and_bearer_masked_but_prose_kept(self) -> None:
        """`Basic <base64>` and `Bearer <token>` lose the credential; "Basic
        information" is prose and stays."""
        text = "Basic dXNlcjpwYXNzd29yZA== / Bearer tok-7f3a9c1e5b / Basic information"
        assert artifact_text(text, str) == "Basic *** / Bearer *** / Basic information"


class TestBase64Spellings:
    def test_base64_of_any_text_containing_the_secret_is_masked(self) -> None:
        """Whatever precedes the secret (a basic-auth username of any length), its
        base64 encoding loses the fragment carrying the secret."""
        import base64

        secret = "Cn4ry+7/zQ~x9!kW"
        scrub = Scrubber([secret])
        for prefix in ("", "a:", "ab:", "synthetic+canary@shop.example:"):
            encoded = base64.b64encode(f"{prefix}{secret}".encode()).decode()
            assert not any(core in scrub(encoded) for core in base64_cores(secret))
            assert "***" in scrub(encoded)

    def test_exact_basic_auth_pair_is_masked(self) -> None:
        """The configured (username, password) pairs' base64 is masked whole."""
        import base64

        token = base64.b64encode(b"user:pw12").decode()
        assert Scrubber(["pw12"], basic_auth=[("user", "pw12")])(f"Basic {token}") == "Basic ***"
