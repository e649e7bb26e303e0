"""Per-target request rate limits (`[targets.X] max_requests_per_second`).

One `Pacer` per target, shared by every run against it (HTTP requests of all
journeys, and browser requests when the browser runner asks it), so a burst of
journeys can never load the target beyond its configured rate.

The limiter paces rather than bursts: requests leave synthmon at least
``1 / max_requests_per_second`` apart (a token bucket of capacity one), so the target
sees at most N requests per second from synthmon, give or take one that network
jitter moves across a second boundary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from synthmon.model import Target

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Route


class Pacer:
    """Lets callers through one at a time, at least `1/rate` seconds apart, in
    arrival order."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._last = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for this request's turn.

        The spacing is measured from when the previous caller was actually let
        through, not from when it was due: after an event-loop stall the waiting
        requests still leave one interval apart instead of in a burst. The lock is
        FIFO, and a caller cancelled while waiting simply leaves the queue.
        """
        async with self._lock:
            wait = self._last + self._interval - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._last = self._clock()


class RateLimits:
    """The pacers of every target that has `max_requests_per_second`."""

    def __init__(
        self,
        targets: Iterable[Target],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pacers: dict[str, Pacer] = {
            t.name: Pacer(t.max_requests_per_second, clock=clock, sleep=sleep)
            for t in targets
            if t.max_requests_per_second
        }

    def for_target(self, name: str) -> Pacer | None:
        return self._pacers.get(name)

    async def acquire(self, target: str) -> None:
        """Wait until one more request to `target` is within its rate (no-op without
        a limit). The browser runner calls this from its request route handler."""
        pacer = self._pacers.get(target)
        if pacer is not None:
            await pacer.acquire()


async def pace_browser(context: BrowserContext, pacer: Pacer, target: Target) -> None:
    """Hold each browser request to `target`'s hosts until the pacer allows it.

    Requests to other hosts (third parties) are not paced. The handler ends with
    `route.fallback()`, so routes registered *before* this one (allowed-hosts checks,
    third-party blocking) still decide what happens to the request: Playwright runs
    route handlers in reverse order of registration. Register this last.
    """

    async def handler(route: Route) -> None:
        if target.allows(urlsplit(route.request.url).hostname or ""):
            await pacer.acquire()
        await route.fallback()

    await context.route("**/*", handler)
