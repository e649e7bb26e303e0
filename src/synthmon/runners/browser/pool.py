"""One long-lived Chromium per daemon, shared by browser runs through slots.

    pool = BrowserPool(options, events=...)
    async with pool.lease(wait=journey.timeout) as lease:   # a slot and a live browser
        context = await lease.browser.new_context(...)       # the run's own context
        ...
        lease.crashed                                        # did Chromium die meanwhile?
    await pool.aclose()                                      # browser, driver, leftovers

Lifecycle of the browser: absent → launching → up → (recycle | crash) → absent.
Recycling (after N runs, past an RSS limit, or a driver older than its limit) is
decided when a run ends and carried out by the next lease once no run is in flight:
new leases wait meanwhile, so no run ever loses its browser to a recycle. A crash
(`disconnected` without us closing it) is reported to the leases in flight, the
process tree is reaped, and the next lease launches a fresh browser.

Launching happens in a task the pool owns, so a run that gives up waiting (its
timeout) never leaves a half-started Chromium behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psutil
import structlog
from playwright.async_api import Browser, Playwright, async_playwright

from synthmon.errors import BrowserExhaustedError, BrowserUnavailableError

log = structlog.get_logger("synthmon.browser")

# Flags every Chromium we start gets: no traffic of its own (updates, sync, safe
# browsing lists), so the target sees only the journey and nothing phones home.
BASE_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
_HAS_PSS = psutil.LINUX
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "install one (Debian/Ubuntu: 'apt-get install chromium'; or 'playwright install "
    "chromium') or set [browser].executable_path"
)


class PoolEvents(Protocol):
    """Where the pool reports what happened (the daemon wires it to metrics)."""

    def count(self, event: str, reason: str = "") -> None:
        """launch(reason=ok|failed), crash, recycle(reason=runs|rss|driver|unresponsive),
        artifact_failed(reason=the artifact: screenshot|trace|html|console|network|...)."""

    def gauge(self, name: str, value: float) -> None:
        """contexts_in_use, waiting_runs, rss_bytes."""


class NoEvents:
    def count(self, event: str, reason: str = "") -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class PoolOptions:
    executable_path: str | None = None
    headless: bool = True
    args: tuple[str, ...] = ()
    no_sandbox: bool = False
    max_concurrency: int = 2
    recycle_after_runs: int = 200
    max_rss_bytes: int = 1024 * 1024 * 1024
    driver_recycle_after: float = 6 * 3600.0
    launch_timeout: float = 30.0


@dataclass(eq=False)
class Lease:
    """One run's hold on the browser."""

    browser: Browser
    generation: int
    crashed: bool = False


def find_executable(configured: str | None, bundled: str | None = None) -> str | None:
    """The Chromium to launch: the configured one, Playwright's bundled one, or the
    first of CANDIDATES on PATH. None when there is none."""
    if configured:
        found = shutil.which(configured)
        return found if found else (configured if os.path.isfile(configured) else None)
    if bundled and os.path.isfile(bundled):
        return bundled
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserPool:
    def __init__(
        self,
        options: PoolOptions,
        *,
        events: PoolEvents | None = None,
        playwright: Playwright | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        # A driver passed in belongs to the caller: never restarted or stopped here.
        self._own_driver = playwright is None
        self._events: PoolEvents = events or NoEvents()
        self._clock = clock
        self._slots = asyncio.Semaphore(options.max_concurrency)
        self._cond = asyncio.Condition()
        self._pw: Playwright | None = playwright
        self._pw_started = clock()
        self._browser: Browser | None = None
        self._generation = 0
        self._launch_task: asyncio.Task[Browser] | None = None
        self._closing_browser: Browser | None = None
        self._leases: set[Lease] = set()
        self._runs_on_browser = 0
        self._recycle_reason: str | None = None
        self._waiting = 0
        self._tree: list[psutil.Process] = []
        self._reaping: set[asyncio.Future[Any]] = set()
        self._closed = False
        self._marker_prefix = f"--synthmon-browser={os.getpid()}-{id(self)}-"
        self.browser_pid: int | None = None
        self.executable: str | None = None
        self.last_error: str | None = None
        self.launches = 0

    # -- public ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, wait: float) -> AsyncIterator[Lease]:
        """A browser slot and a live browser within `wait` seconds.

        Raises BrowserExhaustedError when no slot frees up in time and
        BrowserUnavailableError when Chromium cannot be found or launched.
        """
        if self._closed:
            raise BrowserUnavailableError("the browser pool is shut down")
        self._waiting += 1
        self._events.gauge("waiting_runs", self._waiting)
        acquired = False
        try:
            try:
                async with asyncio.timeout(wait):
                    await self._slots.acquire()
                    acquired = True
                    browser = await self._browser_for_new_run()
            except TimeoutError:
                if acquired:
                    # Had a slot, but a recycle or launch kept us waiting past the budget.
                    raise BrowserExhaustedError(
                        f"no browser ready within {wait:g}s (launching or recycling took "
                        "too long); see the browser_launch events in the log"
                    ) from None
                raise BrowserExhaustedError(
                    f"no browser slot free within {wait:g}s: {self.options.max_concurrency} "
                    "browser runs already in flight ([browser].max_concurrency); raise it "
                    "if the host has the memory, or spread the browser journeys out"
                ) from None
        except BaseException:
            if acquired:
                self._slots.release()
            raise
        finally:
            self._waiting -= 1
            self._events.gauge("waiting_runs", self._waiting)
        lease = Lease(browser, self._generation)
        self._leases.add(lease)
        self._events.gauge("contexts_in_use", len(self._leases))
        try:
            yield lease
        finally:
            self._leases.discard(lease)
            self._events.gauge("contexts_in_use", len(self._leases))
            try:
                # Decide on recycling before the slot frees up, or the next run could
                # take the browser that should have been relaunched.
                await self._after_run(lease)
            finally:
                self._slots.release()

    def recycle_soon(self, reason: str) -> None:
        """Relaunch the browser once the runs in flight are done (a browser that
        stopped answering, say)."""
        if self._browser is not None and self._recycle_reason is None:
            self._recycle_reason = reason

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        exe = self.executable or find_executable(self.options.executable_path)
        detail: dict[str, Any] = {
            "executable": exe,
            "browser": "up" if self._browser is not None else "not launched",
            "launches": self.launches,
            "in_use": len(self._leases),
        }
        if exe is None:
            detail["error"] = f"no Chromium found: {INSTALL_HINT}"
            return False, detail
        if self._browser is None and self.last_error is not None:
            detail["error"] = self.last_error
            return False, detail
        return True, detail

    def process_tree(self) -> list[psutil.Process]:
        """The browser's processes now (main process first)."""
        if self.browser_pid is None:
            return []
        try:
            main = psutil.Process(self.browser_pid)
            return [main, *main.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_bytes(self) -> int:
        """Memory of the browser's process tree. On Linux the sum of PSS: Chromium's
        processes share most of their pages, and summing plain RSS counts those once
        per process (about twice the real figure). Elsewhere, the sum of RSS."""
        total = 0
        for proc in self.process_tree():
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info() if _HAS_PSS else proc.memory_info()
                total += getattr(info, "pss", info.rss)
        return total

    async def aclose(self) -> None:
        """Close the browser and the driver; kill whatever of Chromium is left."""
        self._closed = True
        if self._launch_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._launch_task)
        await self._close_browser()
        await self._stop_driver()
        await self.settled()

    # -- internals -------------------------------------------------------------------

    async def _browser_for_new_run(self) -> Browser:
        async with self._cond:
            # A pending recycle waits for the runs in flight; new runs wait with it.
            await self._cond.wait_for(lambda: self._recycle_reason is None or not self._leases)
            if self._recycle_reason is not None:
                reason, self._recycle_reason = self._recycle_reason, None
                log.info("browser_recycle", reason=reason, runs=self._runs_on_browser)
                self._events.count("recycle", reason)
                await self._close_browser()
                if reason == "driver":
                    await self._stop_driver()
            if self._browser is None or not self._browser.is_connected():
                await self.settled()
                await self._launch()
            assert self._browser is not None
            self._runs_on_browser += 1
            return self._browser

    async def _after_run(self, lease: Lease) -> None:
        reason = None
        if lease.generation == self._generation and self._browser is not None:
            self._snapshot_tree()
            rss = await asyncio.to_thread(self.rss_bytes)  # reads /proc/*/smaps_rollup
            self._events.gauge("rss_bytes", rss)
            if self._runs_on_browser >= self.options.recycle_after_runs:
                reason = "runs"
            elif rss > self.options.max_rss_bytes:
                reason = "rss"
            elif (
                self._own_driver
                and self._clock() - self._pw_started > self.options.driver_recycle_after
            ):
                reason = "driver"
        async with self._cond:
            if reason is not None and self._recycle_reason is None:
                self._recycle_reason = reason
            self._cond.notify_all()

    async def _launch(self) -> None:
        # Launch in a task of our own that also installs the browser: a run that gives up
        # waiting (its timeout) neither abandons a half-started Chromium nor loses the
        # started one (the next run finds it in self._browser).
        if self._launch_task is None or self._launch_task.done():
            self._launch_task = asyncio.create_task(self._do_launch(), name="synthmon-browser")
            # A failure nobody waited for any more is already logged by _launch_failed.
            self._launch_task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(self._launch_task)

    async def _do_launch(self) -> Browser:
        opts = self.options
        try:
            if self._pw is None:
                self._pw = await async_playwright().start()
                self._pw_started = self._clock()
            exe = find_executable(opts.executable_path, self._pw.chromium.executable_path)
        except Exception as exc:
            self._launch_failed(f"cannot start the Playwright driver: {exc}")
            raise BrowserUnavailableError(self.last_error or "") from exc
        self.executable = exe
        if exe is None:
            where = (
                f"[browser].executable_path={opts.executable_path!r} does not exist"
                if opts.executable_path
                else "no Chromium found (Playwright's bundled one, or "
                + "/".join(CANDIDATES)
                + " on PATH)"
            )
            self._launch_failed(f"{where}: {INSTALL_HINT}")
            raise BrowserUnavailableError(self.last_error or "")
        # A switch Chromium ignores, unique per launch: how we find *this* browser's
        # main process among our descendants, even with several pools in one process.
        marker = f"{self._marker_prefix}{self._generation + 1}"
        try:
            browser = await self._pw.chromium.launch(
                executable_path=exe,
                headless=opts.headless,
                args=[*BASE_ARGS, *opts.args, marker],
                chromium_sandbox=not opts.no_sandbox,
                timeout=opts.launch_timeout * 1000,
                # The daemon owns signals and closes the browser in its ordered shutdown.
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = INSTALL_HINT
            if not opts.no_sandbox and hasattr(os, "geteuid") and os.geteuid() == 0:
                hint = (
                    "Chromium's sandbox does not start as root on most hosts: run synthmon "
                    "as a non-root user, or set [browser].no_sandbox = true (see "
                    "docs/browser.md)"
                )
            self._launch_failed(f"cannot launch {exe}: {first}; {hint}")
            raise BrowserUnavailableError(self.last_error or "") from exc
        self._generation += 1
        self.launches += 1
        self.last_error = None
        self._runs_on_browser = 0
        self.browser_pid = _browser_pid(marker)
        self._snapshot_tree()
        generation = self._generation
        browser.on("disconnected", lambda _: self._on_disconnected(browser, generation))
        self._browser = browser
        self._events.count("launch", "ok")
        log.info("browser_launched", executable=exe, pid=self.browser_pid, version=browser.version)
        return browser

    def _launch_failed(self, message: str) -> None:
        self.last_error = message
        self._events.count("launch", "failed")
        log.error("browser_unavailable", error=message)

    def _on_disconnected(self, browser: Browser, generation: int) -> None:
        if browser is self._closing_browser or generation != self._generation:
            return  # we closed it ourselves
        log.error("browser_crashed", pid=self.browser_pid, in_flight=len(self._leases))
        self._events.count("crash")
        for lease in self._leases:
            if lease.generation == generation:
                lease.crashed = True
        if self._browser is browser:
            self._browser = None
        self._reap()

    def _snapshot_tree(self) -> None:
        tree = self.process_tree()
        if tree:
            self._tree = tree

    def _reap(self) -> None:
        """Kill what is left of the last known process tree (renderers of a crashed
        browser get re-parented away from us and could linger), and wait for them in
        a thread so the next launch and shutdown can make sure they are gone."""
        doomed = []
        for proc in self._tree:
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.kill()
                    doomed.append(proc)
        self._tree = []
        if doomed:
            self._reaping.add(
                asyncio.ensure_future(asyncio.to_thread(psutil.wait_procs, doomed, 5.0))
            )

    async def settled(self) -> None:
        """Wait until the processes of closed or crashed browsers have exited."""
        while self._reaping:
            pending, self._reaping = self._reaping, set()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _close_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is None:
            self._reap()
            return
        self._closing_browser = browser
        try:
            async with asyncio.timeout(10):
                await browser.close()
        except Exception as exc:  # noqa: BLE001 - a dead browser cannot be closed; reap it
            log.warning("browser_close_failed", error=str(exc).splitlines()[0] if exc else "")
        finally:
            self._closing_browser = None
            self._reap()
            self.browser_pid = None

    async def _stop_driver(self) -> None:
        if self._own_driver:
            pw, self._pw = self._pw, None
            if pw is not None:
                try:
                    async with asyncio.timeout(10):
                        await pw.stop()
                except Exception as exc:  # noqa: BLE001 - shutting down regardless
                    log.warning("playwright_stop_failed", error=str(exc))
        # Any browser of this pool still below us now is a leak: end it and its children
        # (other pools' browsers in the same process, e.g. in the benchmark, are spared).
        leftovers = []
        for proc in _children():
            with contextlib.suppress(psutil.Error):
                if _is_chromium(proc) and any(
                    a.startswith(self._marker_prefix) for a in proc.cmdline()
                ):
                    leftovers += [proc, *proc.children(recursive=True)]
        if leftovers:
            log.warning("browser_leftovers_killed", pids=[p.pid for p in leftovers])
            self._tree = leftovers
            self._reap()


def _children() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _is_chromium(proc: psutil.Process) -> bool:
    try:
        name = proc.name().lower()
    except psutil.Error:
        return False
    return "chrom" in name or "headless_shell" in name


def _browser_pid(marker: str) -> int | None:
    """The main process of the Chromium launched with `marker` on its command line."""
    for proc in _children():
        with contextlib.suppress(psutil.Error):
            if _is_chromium(proc) and marker in proc.cmdline():
                parent = proc.parent()
                if parent is None or not _is_chromium(parent):
                    return proc.pid
    return None
