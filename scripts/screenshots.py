"""`make screenshots`: the status page and a failing journey's page, photographed in
headless Chromium at desktop width and at phone width (375 px, dark scheme), into
docs/images/ (or the folder given). README.md shows them.

The daemon is built exactly as `synthmon run` builds it, against the bundled demo shop,
with four journeys: one passing (`home`), one degraded (`search`, slower than its
budget), one failing browser journey (`checkout`, a button that is not there) and one
paused (`newsletter`). tests/status/ drives the same scenario (`scenario`), and runs
this script into a temporary folder so that it cannot rot.

Usage: python scripts/screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.async_api import Browser, async_playwright
from prometheus_client import CollectorRegistry

from synthmon.config.settings import load_settings
from synthmon.daemon import Daemon
from synthmon.model import RunResult
from synthmon.runners.browser.pool import BASE_ARGS, find_executable
from synthmon_demo import RunningShop, serve

ROOT = Path(__file__).resolve().parents[1]
NO_SANDBOX = os.geteuid() == 0
JOURNEYS = '''
import asyncio

from synthmon import Context, journey


@journey(severity="critical", interval="1h", timeout="10s", tags=["shop", "public"],
         runbook_url="https://runbooks.example/home")
async def home(ctx: Context) -> None:
    """The shop's home page answers."""
    async with ctx.step("home"):
        (await ctx.http.get("/")).raise_for_status()


@journey(severity="warning", interval="1h", timeout="10s", tags=["shop", "search"],
         degraded_after="150ms", alert={"consecutive": 1})
async def search(ctx: Context) -> None:
    """Product search finds mugs within its latency budget."""
    async with ctx.step("search"):
        r = await ctx.http.get("/api/products", params={"q": "mug"})
        r.raise_for_status()
    async with ctx.step("render"):
        await asyncio.sleep(0.3)  # the part of the page that got slow


@journey(kind="browser", severity="critical", interval="1h", timeout="20s",
         tags=["shop", "public"], runbook_url="https://runbooks.example/checkout",
         alert={"consecutive": 1, "retries": 0, "rechecks": 0})
async def checkout(ctx: Context) -> None:
    """A shopper can put a mug into the cart."""
    page = ctx.page
    async with ctx.step("products"):
        await page.goto("/products")
    async with ctx.step("add to cart"):
        await page.click("#add-unicorn-mug", timeout=2000)


@journey(severity="info", interval="1h", timeout="10s", tags=["marketing"])
async def newsletter(ctx: Context) -> None:
    """The newsletter sign-up page answers."""
    async with ctx.step("signup"):
        (await ctx.http.get("/")).raise_for_status()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Scene:
    daemon: Daemon
    shop: RunningShop
    url: str
    results: dict[str, RunResult]


async def _wait_for_history(
    url: str, journeys: list[str], headers: dict[str, str], within: float = 20.0
) -> None:
    """Until the history holds each journey's runs and the statistics are computed."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        while True:
            done = True
            for name in journeys:
                body = (await client.get(f"/api/journeys/{name}")).json()
                done = done and bool(body.get("recent_runs")) and bool(body["journeys"][0]["stats"])
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"history did not show runs of {journeys} within {within}s")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def scenario(
    workdir: Path,
    *,
    extra_toml: str = "",
    status_page: str = "",
    read_token: str | None = None,
) -> AsyncIterator[Scene]:
    """The demo shop and a daemon with one passing, one degraded, one failing (browser)
    and one paused journey, each already run; always stopped afterwards.
    `status_page`: lines for that section; `extra_toml`: more sections; `read_token`:
    reads need this bearer token (`[server] read_auth`)."""
    jdir = workdir / "journeys"
    jdir.mkdir(parents=True, exist_ok=True)
    (jdir / "shop.py").write_text(textwrap.dedent(JOURNEYS).lstrip(), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server, headers = "", {}
    if read_token is not None:
        (workdir / "read_token").write_text(read_token, encoding="utf-8")
        server = f'read_auth = {{ token = {{ file = "{workdir / "read_token"}" }} }}'
        headers = {"Authorization": f"Bearer {read_token}"}
    async with serve() as shop:
        config = workdir / "synthmon.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                journeys_dir = "{jdir}"
                data_dir = "{workdir / "data"}"
                location = "eu-west-1"

                [server]
                listen = "127.0.0.1:{port}"
                external_url = "{url}"
                {server}

                [history]
                flush_interval = "0.2s"
                stats_interval = "1s"

                [browser]
                no_sandbox = {str(NO_SANDBOX).lower()}

                [tracing]
                ui_url = "https://tempo.example/trace/{{trace_id}}"

                [status_page]
                {status_page}

                [targets.shop]
                base_url = "{shop.url}"
                """
            ).lstrip()
            + textwrap.dedent(extra_toml),
            encoding="utf-8",
        )
        daemon = Daemon(load_settings(config), registry=CollectorRegistry(), config_path=config)
        await daemon.start()
        try:
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                r = await client.post(
                    "/api/pause", json={"journey": "newsletter", "reason": "campaign over"}
                )
                r.raise_for_status()
            results: dict[str, RunResult] = {}
            for name, times in (("home", 3), ("search", 3), ("checkout", 1)):
                for _ in range(times):
                    results[name] = await daemon.run_pair(*daemon.pairs[f"{name}@shop"])
            await _wait_for_history(url, ["home", "search", "checkout"], headers)
            yield Scene(daemon, shop, url, results)
        finally:
            await daemon.stop(grace=2.0)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium through Playwright, as the daemon's browser pool starts it."""
    async with async_playwright() as pw:
        exe = find_executable(None, pw.chromium.executable_path)
        browser = await pw.chromium.launch(
            executable_path=exe, args=list(BASE_ARGS), chromium_sandbox=not NO_SANDBOX
        )
        try:
            yield browser
        finally:
            await browser.close()


SHOTS = (
    # file, path, width, height, colour scheme
    ("status-desktop.png", "/", 1280, 800, "light"),
    ("status-phone.png", "/", 375, 812, "dark"),
    ("journey-desktop.png", "/journeys/checkout?target=shop", 1280, 800, "light"),
    ("journey-phone.png", "/journeys/checkout?target=shop", 375, 812, "dark"),
)


async def take(url: str, out: Path) -> list[Path]:
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    written = []
    async with chromium() as browser:
        for name, path, width, height, scheme in SHOTS:
            context = await browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            page = await context.new_page()
            await page.goto(url + path, wait_until="networkidle")
            await page.screenshot(path=out / name, full_page=True)
            await context.close()
            written.append(out / name)
    return written


async def main(out: Path) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="synthmon-shots-") as tmp:
        async with scenario(Path(tmp)) as scene:
            return await take(scene.url, out)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images"
    for path in asyncio.run(main(target)):
        print(path)
