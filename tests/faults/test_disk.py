"""Items 1 and 2 of the fault suite: a full data disk neither loses alerts nor turns
real failures into internal errors."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from synthmon.model import Status
from synthmon_demo import RunningShop
from tests.browser.conftest import NO_SANDBOX
from tests.conftest import set_chaos
from tests.faults._common import HEALTHY, kept_schedule, no_alert, receiver
from tests.faults._disk import fill, small_tmpfs
from tests.harness import make_settings, run_daemon, sample, scrape

CATALOG = """
from synthmon import Context, journey

@journey(interval="1s", timeout="1s", severity="critical")
async def catalog(ctx: Context) -> None:
    async with ctx.step("search"):
        (await ctx.http.get("/api/products")).raise_for_status()
"""
ALERTING = """
[alerting]
retry_base_delay = "0.1s"
retry_max_delay = "0.3s"
heartbeat = false

[alerting.webhook]
url = { env = "TEST_WEBHOOK_URL" }

[alerting.routes]
critical = ["webhook"]

[alerting.severity.critical]
retries = 0
rechecks = 0
"""


async def _ready(url: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{url}/readyz")
    return r.status_code, r.json()["checks"]["data_dir"]


async def _until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within}s: {check}"
        await asyncio.sleep(0.1)


class TestAlertsOnAFullDisk:
    async def test_full_disk_delivers_from_memory_and_persists_when_space_is_back(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With data_dir full, a critical journey's incident still pages and resolves
        (delivered from memory), the depth gauge counts what waits, /readyz and
        synthmon_data_dir_writable say the disk fails; once space is freed, what waits
        is written to the database and delivered; nothing lost, nothing sent twice,
        and the healthy journey kept its schedule without an alert."""
        with small_tmpfs(tmp_path / "data") as disk:
            async with receiver() as rec:
                monkeypatch.setenv("TEST_WEBHOOK_URL", f"{rec.url}/webhook")
                settings = make_settings(
                    tmp_path,
                    targets={"demo": shop.url},
                    journeys={"healthy.py": HEALTHY, "catalog.py": CATALOG},
                    extra_toml=ALERTING,
                )
                async with run_daemon(settings) as (daemon, collector):
                    url = daemon.server.url
                    since = time.time()
                    filler = fill(disk)
                    # Incident 1 opens and closes while the disk is full.
                    await set_chaos(shop, "error", paths=["/api/products"])
                    await rec.wait_for(1, "catalog")
                    text = await scrape(daemon)
                    assert sample(text, "synthmon_data_dir_writable") == 0.0
                    errors = sample(text, "synthmon_data_dir_write_errors_total", what="outbox")
                    assert errors and errors >= 1
                    assert sample(text, "synthmon_sink_problems_total", sink="alerting") is None
                    status, check = await _ready(url)
                    assert status == 503 and check["writable"] is False
                    assert "full" in str(check["error"])
                    await set_chaos(shop, "ok")
                    await rec.wait_for(2, "catalog")
                    # Incident 2 opens while the receiver is down too: it waits in memory.
                    rec.fail = True
                    await set_chaos(shop, "error", paths=["/api/products"])

                    async def waiting() -> bool:
                        depth = sample(
                            await scrape(daemon), "synthmon_alert_outbox_depth", notifier="webhook"
                        )
                        return depth == 1.0

                    await _until(waiting)
                    assert daemon.alerting.outbox is not None
                    assert daemon.alerting.outbox.in_memory == 1
                    # Space is back: the waiting trigger is written to the database.
                    filler.unlink()

                    async def persisted() -> bool:
                        with sqlite3.connect(disk / "alerting.sqlite3") as db:
                            rows = db.execute("SELECT payload FROM outbox").fetchall()
                        return len(rows) == 1 and '"incident": 2' in rows[0][0]

                    await _until(persisted)
                    status, check = await _ready(url)
                    assert status == 200 and check["writable"] is True
                    rec.fail = False
                    await rec.wait_for(3, "catalog")
                    await set_chaos(shop, "ok")
                    await rec.wait_for(4, "catalog")
                    until = time.time()
                    await asyncio.sleep(0.5)
                    assert rec.events("catalog") == [
                        ("trigger", 1),
                        ("resolve", 1),
                        ("trigger", 2),
                        ("resolve", 2),
                    ]
                    assert rec.events("healthy") == []
                    kept_schedule(collector, "healthy", since, until - 1)
                    await no_alert(daemon)
                    assert sample(await scrape(daemon), "synthmon_data_dir_writable") == 1.0


PRODUCTS_PAGE = """
from synthmon import Context, journey

@journey(kind="browser", interval="1h", timeout="10s", severity="critical")
async def products_page(ctx: Context) -> None:
    async with ctx.step("products"):
        r = await ctx.page.goto("/products")
        assert r is not None and r.status == 200, f"products answered {r and r.status}"
"""


class TestArtifactsOnAFullDisk:
    @pytest.mark.browser
    async def test_full_disk_keeps_the_failure_and_pages(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A browser journey against a shop answering 500, with data_dir full, is
        recorded as the failure it is (not error 'internal'), pages after two runs,
        leaves no empty artifact behind and counts the artifacts it could not write;
        the healthy journey kept its schedule without an alert."""
        with small_tmpfs(tmp_path / "data") as disk:
            async with receiver() as rec:
                monkeypatch.setenv("TEST_WEBHOOK_URL", f"{rec.url}/webhook")
                settings = make_settings(
                    tmp_path,
                    targets={"demo": shop.url},
                    journeys={"healthy.py": HEALTHY, "products.py": PRODUCTS_PAGE},
                    extra_toml=f"[browser]\nno_sandbox = {str(NO_SANDBOX).lower()}\n" + ALERTING,
                )
                async with run_daemon(settings) as (daemon, collector):
                    since = time.time()
                    fill(disk)
                    await set_chaos(shop, "error", paths=["/products"])
                    pair = daemon.pairs["products_page@demo"]
                    for _ in range(2):
                        result = await daemon.run_pair(*pair)
                        assert result.status is Status.FAILURE, (
                            result.reason,
                            result.error_message,
                        )
                        assert result.reason is None
                        assert "products answered 500" in (result.error_message or "")
                    await rec.wait_for(1, "products_page")
                    until = time.time()
                    assert rec.events("products_page") == [("trigger", 1)]
                    assert rec.bodies[0]["failing_step"] == "products"
                    empty = [p for p in disk.rglob("*") if p.is_file() and p.stat().st_size == 0]
                    assert empty == [], f"empty artifacts left behind: {empty}"
                    text = await scrape(daemon)
                    failed = sample(
                        text, "synthmon_browser_artifact_failures_total", artifact="screenshot"
                    )
                    assert failed == 2.0, text
                    kept_schedule(collector, "healthy", since, until - 1)
                    await no_alert(daemon)
                    await set_chaos(shop, "ok")
