"""Per-target request rate limits (`[targets.X] max_requests_per_second`).

One `Pacer` per target, shared by every run against it (HTTP requests of all
journeys, and every browser request to the target's hosts: the browser runner takes
`RateLimits.acquire` as its required `pace` and awaits it in its route handler), so a burst of
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

from synthmon.model import Target


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

    async def acquire(self, target: str) -> None:
        """Wait until one more request to `target` is within its rate (no-op without
        a limit). The browser runner awaits this in its request route handler."""
        pacer = self._pacers.get(target)
        if pacer is not None:
            await pacer.acquire()
