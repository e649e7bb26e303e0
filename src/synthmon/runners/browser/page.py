"""Per-run browser state: request routing (tagging, allowed hosts, third parties),
console and network failure capture, and the Context that adds navigation timings
to steps."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import structlog
from playwright.async_api import ConsoleMessage, Request, Route
from playwright.async_api import Error as PlaywrightError

from synthmon.journeys.context import Context, RunRecord
from synthmon.model import Target
from synthmon.runners.base import add_baggage, traceparent
from synthmon.runners.browser.navspans import NavigationSpans

log = structlog.get_logger("synthmon.browser")


# Navigation Timing of the current document, ms since its navigation started.
_NAV_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return n ? [performance.timeOrigin, n.responseStart, n.domContentLoadedEventEnd,
              n.loadEventEnd] : null;
}"""


@dataclasses.dataclass
class RunState:
    """What one run's browser told us: blocked navigations, crashes, logs."""

    target: Target
    trace_id: str
    tags: tuple[tuple[str, str], ...]
    ua_suffix: str
    # Waits for the target's max_requests_per_second (shared with every other run).
    pace: Callable[[], Awaitable[None]]
    # W3C baggage for allowed hosts (synthetic=true, the journey).
    baggage: str = "synthetic=true"
    blocked: list[str] = dataclasses.field(default_factory=list)
    page_crashed: bool = False
    console: list[str] = dataclasses.field(default_factory=list)
    network: list[str] = dataclasses.field(default_factory=list)
    lease_crashed: Callable[[], bool] = lambda: False
    # The traceparent of each allowed request: its navigation's span (navspans.py).
    navigations: NavigationSpans | None = None

    @property
    def crashed(self) -> bool:
        return self.page_crashed or self.lease_crashed()

    async def route(self, route: Route, request: Request) -> None:
        url = request.url
        host = urlsplit(url).hostname or ""
        if self.target.allows(host):
            # Paced here, in the handler every request passes, so no journey route and
            # no registration order can let a request to the target skip the limit.
            await self.pace()
            headers = dict(request.headers)
            headers.update(self.tags)
            headers["baggage"] = add_baggage(headers.get("baggage"), self.baggage)
            headers["traceparent"] = (
                self.navigations.traceparent(
                    request,
                    main_navigation=request.is_navigation_request() and _is_main_frame(request),
                )
                if self.navigations is not None
                else traceparent(self.trace_id)
            )
            ua = headers.get("user-agent", "")
            headers["user-agent"] = f"{ua} {self.ua_suffix}".strip()
            await route.continue_(headers=headers)
            return
        if request.is_navigation_request() and _is_main_frame(request):
            self.blocked.append(url)
            await route.abort("blockedbyclient")
            return
        if self.target.block_third_party:
            # In network.txt, so a page broken by the blocking says why.
            self.network.append(f"BLOCKED third party (block_third_party) {request.method} {url}")
            await route.abort("blockedbyclient")
            return
        # Third-party subresources go out untouched: custom headers on them would turn
        # simple CORS requests into preflighted ones and break the page.
        await route.continue_()

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(f"{msg.type}: {msg.text} ({_location(msg)})")

    def on_page_error(self, error: PlaywrightError) -> None:
        self.console.append(f"uncaught: {error.message}")

    def on_request_failed(self, request: Request) -> None:
        self.network.append(f"FAILED {request.method} {request.url}: {request.failure}")
        if self.navigations is not None:
            self.navigations.failed(request, request.failure)

    async def on_response(self, response: Any) -> None:
        if self.navigations is not None:
            self.navigations.responded(response.request, response.status)
        if response.status >= 400:
            self.network.append(f"HTTP {response.status} {response.request.method} {response.url}")


def _is_main_frame(request: Request) -> bool:
    try:
        return request.frame.parent_frame is None
    except PlaywrightError:  # a service worker's request has no frame
        return False


def _location(msg: ConsoleMessage) -> str:
    loc = msg.location
    return f"{loc.get('url', '')}:{loc.get('lineNumber', '')}"


class BrowserJourneyContext(Context):
    """`Context` plus Navigation Timing per step: when a step's page is a new
    document, its TTFB, DOMContentLoaded and load (seconds since navigation start)
    go into the step's `timings`."""

    def __init__(
        self, *args: Any, navigations: NavigationSpans | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._time_origin: float | None = None
        self._navigations = navigations

    @property
    def record(self) -> RunRecord:
        """What this run recorded (for the runner; not journey-author API)."""
        return self._run

    @asynccontextmanager
    async def step(self, name: str, *, soft: bool = False) -> AsyncIterator[None]:
        timings: tuple[tuple[str, float], ...] = ()
        steps = self.record.steps
        before = len(steps)
        async with super().step(name, soft=soft):
            yield
            timings = await self._navigation_timings()
        if timings and len(steps) > before:
            steps[-1] = dataclasses.replace(steps[-1], timings=timings)

    async def _navigation_timings(self) -> tuple[tuple[str, float], ...]:
        if self._page is None:
            return ()
        try:
            async with asyncio.timeout(1.0):
                nav = await self._page.evaluate(_NAV_JS)
        except (PlaywrightError, TimeoutError):
            return ()  # mid-navigation or a closed page: no timings for this step
        if not nav or nav[0] == self._time_origin:
            return ()
        self._time_origin = nav[0]
        names = ("ttfb", "dom_content_loaded", "load")
        timings = tuple((n, v / 1000.0) for n, v in zip(names, nav[1:], strict=True) if v > 0)
        if self._navigations is not None:
            self._navigations.timed(nav[0], timings)
        return timings
