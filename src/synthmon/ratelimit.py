"""Per-target request rate limits (`[targets.X] max_requests_per_second`).

One `Pacer` per target, shared by every run against it (HTTP requests of all
journeys, and browser requests when the browser runner asks it), so a burst of
journeys can never load the target beyond its configured rate.

The limiter paces rather than bursts: requests are spaced at least
``1 / max_requests_per_second`` apart (a token bucket of capacity one, written as
the "generic cell rate algorithm"). That makes the promise simple to check from the
target's side: never more than N requests in any one-second window.
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
    """Hands out send times at least `1/rate` seconds apart, first come first served."""

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
        self._next = float("-inf")

    async def acquire(self) -> None:
        """Wait for this request's turn. Reserving the slot before sleeping keeps
        concurrent callers in order without a lock; a caller cancelled while waiting
        leaves its slot unused (conservative: the rate never goes up)."""
        now = self._clock()
        at = max(now, self._next)
        self._next = at + self._interval
        if at > now:
            await self._sleep(at - now)


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
