"""Item 8 of the fault suite: bodies of the pause API are parsed within bounds."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from synthmon_demo import RunningShop
from tests.faults._common import HEALTHY, kept_schedule, no_alert
from tests.harness import make_settings, run_daemon


class TestPauseApiBounds:
    async def test_hostile_bodies_get_400_or_413_and_change_nothing(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A 100,000-level nested body, a 900 KB reason and an over-long field each get a
        4xx naming the limit (never a 500 traceback), no pause is stored, and the healthy
        journey keeps its schedule without an alert."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"healthy.py": HEALTHY}
        )
        async with run_daemon(settings) as (daemon, collector):
            since = time.time()
            nested = "[" * 100_000 + "]" * 100_000
            async with httpx.AsyncClient(base_url=daemon.server.url, timeout=10) as client:
                headers = {"Content-Type": "application/json"}
                r = await client.post("/api/pause", content=nested, headers=headers)
                assert r.status_code == 413, r.text
                assert "limit" in r.json()["error"]
                deep = '{"journey": ' + "[" * 5_000 + "]" * 5_000 + "}"
                r = await client.post("/api/pause", content=deep, headers=headers)
                assert r.status_code == 400, r.text
                assert "flat JSON object" in r.json()["error"]
                huge = json.dumps({"journey": "healthy", "reason": "x" * 900_000})
                r = await client.post("/api/pause", content=huge, headers=headers)
                assert r.status_code == 413, r.text
                assert "16384" in r.json()["error"]
                r = await client.post("/api/pause", json={"all": True, "reason": "y" * 5_000})
                assert r.status_code == 400, r.text
                assert "reason is 5000 characters; the limit is 1000" in r.json()["error"]
                r = await client.post("/api/pause", json={"journey": "j" * 300})
                assert r.status_code == 400, r.text
                assert "journey is 300 characters" in r.json()["error"]
                r = await client.get("/api/pauses")
                assert r.json()["rules"] == [], r.text
            await asyncio.sleep(3.5)
            kept_schedule(collector, "healthy", since, time.time() - 1)
            await no_alert(daemon)
