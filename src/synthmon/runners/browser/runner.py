"""The browser runner: `kind="browser"` journeys in a fresh BrowserContext per run on
the pool's long-lived Chromium.

Per run: lease a slot → new context (base_url = the target's, own cookies and cache)
with request routing (tagging, allowed hosts) and tracing → the journey under its
hard timeout (`execute`) → failure artifacts → context closed in `finally`, whatever
happened. See docs/browser.md for the decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import structlog
from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from synthmon._version import __version__
from synthmon.errors import (
    BrowserCrashError,
    InfrastructureError,
)
from synthmon.journeys.context import RunRecord
from synthmon.model import RunRequest, RunResult, RunTrace, Status, Target
from synthmon.runners.base import (
    Pace,
    baggage,
    basic_credentials,
    error_result,
    execute,
    run_cleanups,
    run_trace,
)
from synthmon.runners.browser.artifacts import ArtifactStore, Scrubber, no_scrub, scrub_zip
from synthmon.runners.browser.classify import classify_in_run, describe_in_run, explain
from synthmon.runners.browser.navspans import NavigationSpans
from synthmon.runners.browser.page import BrowserJourneyContext, RunState
from synthmon.runners.browser.pool import BrowserPool, NoEvents, PoolEvents, PoolOptions
from synthmon.runners.browser.vitals import FLUSH_TIMEOUT, HUNG_FLUSH_TIMEOUT, VitalsRecorder
from synthmon.runners.leftovers import RunScope

if TYPE_CHECKING:
    from synthmon.config.settings import Settings
    from synthmon.journeys.dsl import Journey

log = structlog.get_logger("synthmon.browser")

ArtifactPolicy = Literal["failure", "always", "never"]

# Capturing artifacts of a hung page must not hang the runner in turn.
SCREENSHOT_TIMEOUT = 5.0
CAPTURE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0


class HttpClientFactory(Protocol):
    """`HttpRunner.client_factory`: gives browser journeys `ctx.http` too."""

    def __call__(
        self,
        target: Target,
        *,
        trace_id: str,
        timeout: float,
        extra_headers: Sequence[tuple[str, str]] = (),
        basic_auth: tuple[str, str] | None = None,
        trace: RunTrace | None = None,
        journey: str | None = None,
    ) -> Callable[[], httpx.AsyncClient]: ...


class BrowserRunner:
    """Runs `kind="browser"` journeys. Never raises for the journey's sake."""

    def __init__(
        self,
        pool: BrowserPool,
        *,
        pace: Pace,
        store: ArtifactStore | None = None,
        artifacts_on: ArtifactPolicy = "failure",
        tag_headers: Sequence[tuple[str, str]] = (),
        ua_suffix: str = "",
        http_factory: HttpClientFactory | None = None,
        scrub: Scrubber = no_scrub,
        viewport: tuple[int, int] = (1280, 800),
        locale: str = "en-US",
        timezone: str = "UTC",
        retention_interval: float = 60.0,
        needed: Callable[[], bool] = lambda: True,
        trace_screenshots: bool = False,
        web_vitals: bool = True,
        clock: Callable[[], float] = time.monotonic,
        events: PoolEvents | None = None,
    ) -> None:
        self.pool = pool
        # Required: a browser run must never bypass the target's rate limit (STYLE 14).
        self._pace = pace
        # Artifact failures are counted here (`artifact_failed`, by artifact).
        self._events: PoolEvents = events or NoEvents()
        # The trace's screencast costs ~20% of a run's CPU; DOM snapshots per action and
        # the full-page screenshot at the end are kept either way (docs/browser.md).
        self._trace_screenshots = trace_screenshots
        self._web_vitals = web_vitals
        self._needed = needed
        self.store = store
        self.artifacts_on: ArtifactPolicy = artifacts_on if store is not None else "never"
        self._tags = tuple(tag_headers)
        self._ua_suffix = ua_suffix
        self._http_factory = http_factory
        self._scrub = scrub
        self._viewport = {"width": viewport[0], "height": viewport[1]}
        self._locale = locale
        self._timezone = timezone
        self._retention_interval = retention_interval
        self._retention_task: asyncio.Task[None] | None = None
        self._clock = clock

    # -- the Runner protocol and the daemon's optional hooks -------------------------

    async def run(self, request: RunRequest) -> RunResult:
        journey, target = request.journey, request.target
        self._ensure_retention()
        started_at = time.time()
        t0 = self._clock()
        try:
            # Entered only around the journey (not the pool's launch of Chromium).
            scope = RunScope(journey.name, target.name, request.run_id)
            async with self.pool.lease(wait=journey.timeout) as lease:
                result = await self._run_in_context(
                    lease.browser.new_context,
                    lambda: lease.crashed,
                    request,
                    started_at=started_at,
                    scope=scope,
                )
        except InfrastructureError as exc:
            return error_result(
                journey,
                target,
                request.run_id,
                started_at,
                exc.reason,
                str(exc),
                request.attempt,
                duration=self._clock() - t0,
                error_type=type(exc).__name__,
            )
        if scope.left_behind:
            result = dataclasses.replace(result, left_behind=scope.left_behind)
        return result

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Not ready when browser journeys exist and no browser can run them; a daemon
        with only HTTP journeys stays ready without Chromium (the detail still says)."""
        ok, detail = self.pool.readiness()
        if not self._needed():
            detail["needed"] = False
            return True, detail
        return ok, detail

    async def aclose(self) -> None:
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        await self.pool.aclose()

    # -- one run ---------------------------------------------------------------------

    async def _run_in_context(
        self,
        new_context: Callable[..., Any],
        lease_crashed: Callable[[], bool],
        request: RunRequest,
        *,
        started_at: float,
        scope: RunScope | None = None,
    ) -> RunResult:
        journey, target, run_id = request.journey, request.target, request.run_id
        attempt, extra_headers = request.attempt, request.extra_headers
        trace = run_trace(request)
        navigations = NavigationSpans(trace)
        state = RunState(
            target=target,
            trace_id=run_id,
            tags=(*self._tags, *target.headers, *extra_headers),
            ua_suffix=self._ua_suffix,
            pace=lambda: self._pace(target.name),
            baggage=baggage(journey.name),
            lease_crashed=lease_crashed,
            navigations=navigations,
        )
        context: BrowserContext | None = None
        ctx: BrowserJourneyContext | None = None
        vitals = VitalsRecorder(self._clock) if self._web_vitals else None
        credentials = basic_credentials(request.account)
        options: dict[str, Any] = {}
        if credentials is not None:
            # Only to the target's origin: Chromium answers another origin's 401
            # challenge with none (ERR_INVALID_AUTH_CREDENTIALS). Chromium sends them
            # in answer to the target's challenge (Playwright's send="always" applies
            # to its API requests only, not to the browser's).
            options["http_credentials"] = {
                "username": credentials[0],
                "password": credentials[1],
                "origin": _origin(target.base_url),
            }
        try:
            try:
                # Outside the journey's deadline, so bounded here: a Chromium that cannot
                # open a page is broken, not the target.
                async with asyncio.timeout(journey.timeout):
                    context = await new_context(
                        base_url=target.base_url,
                        viewport=self._viewport,
                        locale=self._locale,
                        timezone_id=self._timezone,
                        ignore_https_errors=not target.verify_tls,
                        service_workers="block",  # keeps every request visible to routing
                        **options,
                    )
                    assert context is not None
                    if self.artifacts_on != "never":
                        await context.tracing.start(
                            screenshots=self._trace_screenshots, snapshots=True
                        )
                    await context.route("**/*", state.route)
                    if vitals is not None:
                        await vitals.install(context)
                    page = await context.new_page()
            except (PlaywrightError, TimeoutError) as exc:
                self.pool.recycle_soon("unresponsive")
                raise BrowserCrashError(
                    f"Chromium could not open a page for the run ({_first_line(exc)}); "
                    "it is relaunched for the next run"
                ) from exc
            # Journey-level waits must never outlive the run's hard timeout.
            context.set_default_timeout(journey.timeout * 1000)
            page.on("crash", lambda _: setattr(state, "page_crashed", True))
            page.on("console", state.on_console)
            page.on("pageerror", state.on_page_error)
            page.on("requestfailed", state.on_request_failed)
            page.on("response", state.on_response)
            run = RunRecord(
                classify=lambda exc: classify_in_run(exc, state),
                describe=lambda exc: describe_in_run(exc, state, journey.filename),
                clock=self._clock,
            )
            if scope is not None:
                await scope.__aenter__()
            ctx = BrowserJourneyContext(
                journey=journey.name,
                target=target,
                run_id=run_id,
                trace_id=run_id,
                run=run,
                http_factory=(
                    self._http_factory(
                        target,
                        trace_id=run_id,
                        timeout=journey.timeout,
                        extra_headers=extra_headers,
                        basic_auth=credentials,
                        trace=trace,
                        journey=journey.name,
                    )
                    if self._http_factory is not None
                    else None
                ),
                page=page,
                account=request.account,
                run_source=request.run_source,
                trace=trace,
                navigations=navigations,
            )
            result = await execute(
                journey, ctx, run, started_at=started_at, attempt=attempt, clock=self._clock
            )
            result = explain(result, state, page)
            if vitals is not None and not state.crashed:
                # A timed-out page may be hung: its result must not wait long for it.
                wait = HUNG_FLUSH_TIMEOUT if result.status is Status.TIMEOUT else FLUSH_TIMEOUT
                pages = await vitals.collect(page, run, journey.web_vitals, wait=wait)
                result = dataclasses.replace(result, web_vitals=pages)
            if self._keep_artifacts(result.status) and not state.crashed:
                try:
                    paths = await self._capture(journey, run_id, context, page, state)
                except Exception as exc:  # noqa: BLE001 - artifacts never change a result
                    self._artifact_failed(journey.name, run_id, "capture", exc)
                    paths = ()
                result = dataclasses.replace(result, artifacts=paths)
            return result
        finally:
            try:
                if ctx is not None:
                    await run_cleanups(journey, ctx, ctx.record)
            finally:
                navigations.close()
                if ctx is not None:
                    await ctx.aclose()
                if scope is not None:
                    await scope.__aexit__(None, None, None)
                if context is not None:
                    await _force_close(context)

    def _keep_artifacts(self, status: Status) -> bool:
        if self.artifacts_on == "always":
            return True
        return self.artifacts_on == "failure" and status is not Status.SUCCESS

    async def _capture(
        self,
        journey: Journey,
        run_id: str,
        context: BrowserContext,
        page: Page,
        state: RunState,
    ) -> tuple[str, ...]:
        """Screenshot, trace, HTML, console and network logs; each bounded in time and
        allowed to fail on its own (a hung page may refuse some)."""
        assert self.store is not None
        store, scrub = self.store, self._scrub
        try:
            folder = await asyncio.to_thread(store.run_dir, journey.name, run_id)
        except OSError as exc:
            self._artifact_failed(journey.name, run_id, "folder", exc)
            return ()
        paths: list[Path] = []
        await _stop_loading(context, page)
        shot = folder / "screenshot.png"
        try:
            await page.screenshot(
                path=shot, full_page=True, timeout=SCREENSHOT_TIMEOUT * 1000, animations="disabled"
            )
            paths.append(shot)
        except (PlaywrightError, OSError) as exc:
            self._artifact_failed(journey.name, run_id, "screenshot", exc, shot)
        trace = folder / "trace.zip"
        try:
            async with asyncio.timeout(CAPTURE_TIMEOUT):
                await context.tracing.stop(path=trace)
            await asyncio.to_thread(scrub_zip, trace, scrub)
            paths.append(trace)
        except (PlaywrightError, TimeoutError, OSError) as exc:
            self._artifact_failed(journey.name, run_id, "trace", exc, trace)
        try:
            async with asyncio.timeout(SCREENSHOT_TIMEOUT):
                html = await page.content()
            paths.append(store.write_text(folder, "page.html", html, scrub))
        except (PlaywrightError, TimeoutError, OSError) as exc:
            self._artifact_failed(journey.name, run_id, "html", exc, folder / "page.html")
        for name, lines in (("console", state.console), ("network", state.network)):
            try:
                paths.append(store.write_text(folder, f"{name}.txt", _lines(lines), scrub))
            except OSError as exc:
                self._artifact_failed(journey.name, run_id, name, exc, folder / f"{name}.txt")
        try:
            await asyncio.to_thread(store.enforce)
        except OSError as exc:
            log.warning("artifact_retention_failed", error=str(exc))
        if not paths:
            with contextlib.suppress(OSError):
                folder.rmdir()
        return tuple(str(p) for p in paths if p.exists())

    def _artifact_failed(
        self,
        journey: str,
        run_id: str,
        artifact: str,
        exc: BaseException,
        partial: Path | None = None,
    ) -> None:
        """An artifact could not be written (disk full, a page that refuses): logged and
        counted, the partial file removed; the run's result stays what it was."""
        if partial is not None:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        self._events.count("artifact_failed", artifact)
        log.warning(
            "artifact_failed",
            journey=journey,
            run_id=run_id,
            artifact=artifact,
            error=_first_line(exc),
            error_type=type(exc).__name__,
        )

    def _ensure_retention(self) -> None:
        if self.store is None or self._retention_task is not None:
            return
        self._retention_task = asyncio.create_task(
            self._retention_loop(), name="synthmon-artifact-retention"
        )

    async def _retention_loop(self) -> None:
        assert self.store is not None
        while True:
            try:
                await asyncio.to_thread(self.store.enforce)
            except OSError as exc:
                log.warning("artifact_retention_failed", error=str(exc))
            await asyncio.sleep(self._retention_interval)


async def _stop_loading(context: BrowserContext, page: Page) -> None:
    """Stop a navigation still pending (a hung or slow page at the deadline): until it
    commits or stops, Chromium answers neither screenshots nor page.content(). The
    capture then shows what the user was looking at when the run gave up."""
    try:
        async with asyncio.timeout(2.0):
            cdp = await context.new_cdp_session(page)
            await cdp.send("Page.stopLoading")
            await cdp.detach()
    except (PlaywrightError, TimeoutError) as exc:
        log.debug("stop_loading_failed", error=_first_line(exc))


async def _force_close(context: BrowserContext) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await context.close()
    except (PlaywrightError, TimeoutError) as exc:
        # A dead browser has no context to close; the pool reaps it.
        log.debug("context_close_failed", error=_first_line(exc))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _lines(items: list[str]) -> str:
    return "".join(f"{item}\n" for item in items) if items else "(none)\n"


def browser_runner_from_settings(
    settings: Settings,
    *,
    pace: Pace,
    events: PoolEvents | None = None,
    http_factory: HttpClientFactory | None = None,
    scrub: Scrubber = no_scrub,
    needed: Callable[[], bool] = lambda: True,
) -> BrowserRunner:
    """The runner the daemon uses, configured from [browser] and [artifacts]."""
    b, a = settings.browser, settings.artifacts
    pool = BrowserPool(
        PoolOptions(
            executable_path=b.executable_path,
            headless=b.headless,
            args=tuple(b.args),
            no_sandbox=b.no_sandbox,
            max_concurrency=b.max_concurrency,
            recycle_after_runs=b.recycle_after_runs,
            max_rss_bytes=int(b.max_rss_mb * 1024 * 1024),
            driver_recycle_after=b.driver_recycle_after,
            launch_timeout=b.launch_timeout,
        ),
        events=events,
    )
    store = ArtifactStore(
        settings.artifacts_dir,
        max_age=a.max_age,
        max_runs_per_journey=a.max_runs_per_journey,
        max_total_bytes=int(a.max_total_mb * 1024 * 1024),
    )
    return BrowserRunner(
        pool,
        pace=pace,
        store=store,
        artifacts_on=a.on,
        tag_headers=[(settings.synthetic.header, settings.synthetic.value)],
        ua_suffix=f"synthmon/{__version__}",
        http_factory=http_factory,
        scrub=scrub,
        viewport=(b.viewport.width, b.viewport.height),
        locale=b.locale,
        timezone=b.timezone,
        needed=needed,
        trace_screenshots=a.trace_screenshots,
        web_vitals=b.web_vitals,
        events=events,
    )
