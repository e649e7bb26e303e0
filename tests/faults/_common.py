"""Shared pieces of the fault tests of disk, connections, API limits and read access:
a healthy journey that must keep its schedule through the fault, a local receiver for
notifications, and the checks that no alert was lost or invented."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from synthmon.daemon import Daemon
from synthmon.model import Status
from tests.harness import Collector, sample, scrape

# Runs every second against the shop's home page; a fault elsewhere must not touch it.
HEALTHY = """
from synthmon import Context, journey

@journey(interval="1s", timeout="1s", severity="critical")
async def healthy(ctx: Context) -> None:
    async with ctx.step("home"):
        (await ctx.http.get("/")).raise_for_status()
"""


def kept_schedule(collector: Collector, journey: str, since: float, until: float) -> None:
    """Every run of `journey` that started in [since, until] passed, and it ran about
    once a second (one missed slot of slack for the scheduler's spread)."""
    runs = [r for r in collector.of(journey) if since <= r.started_at <= until]
    bad = [(r.status.value, r.error_message) for r in runs if r.status is not Status.SUCCESS]
    assert not bad, f"{journey} failed during the fault: {bad}"
    expected = int(until - since) - 1
    assert len(runs) >= expected, f"{journey}: {len(runs)} runs in {until - since:.1f}s"


async def no_alert(daemon: Daemon, journey: str = "healthy") -> None:
    """Nothing pends or fires for `journey`, and nothing waits in the outbox."""
    text = await scrape(daemon)
    for alertname in ("SyntheticJourneyFailed", "SynthmonInternalError"):
        state = sample(text, "synthmon_alert_state", alertname=alertname, journey=journey)
        assert state in (None, 0.0), f"{alertname} for {journey} is {state}"


@dataclass
class Receiver:
    """A webhook receiver on loopback: every POST body, in order."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False  # answer 503 (a receiver that is down)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self, journey: str | None = None) -> list[tuple[str, int]]:
        """(event, incident) of each notification, optionally of one journey."""
        return [
            (b["event"], b["incident"])
            for b in self.bodies
            if journey is None or b["journey"] == journey
        ]

    async def wait_for(self, n: int, journey: str, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while len(self.events(journey)) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"{n} notifications of {journey} expected, got {self.bodies}"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        if rec.fail:
            return web.Response(status=503, text="receiver down (test)")
        rec.bodies.append(json.loads(await request.read()))
        rec.changed.set()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield rec
    finally:
        await runner.cleanup()
