"""Browser journeys: pooled Chromium vs a browser launched per run, and memory growth.

Against the demo shop in a child process (its CPU and memory are not counted):

  (a) launch-per-run: every run launches its own Chromium (a fresh BrowserPool on one
      shared Playwright driver), runs the journey and closes it again, the way naive
      setups do;
  (b) pooled: the daemon's BrowserRunner (one Chromium, a fresh BrowserContext per
      run, tracing on as in production);
  (c) leak check: the pooled runner for --leak-runs runs; RSS of this process (the
      "daemon") and of the browser's process tree after run 50 and after the last.

Both (a) and (b) run the same journey with the same concurrency ([browser]
max_concurrency default, 2). Peak RSS is this process plus all its descendants,
sampled every 100 ms.

    python bench/browser.py                 # the real figures (500 leak runs)
    python bench/browser.py --quick         # smaller counts
    python bench/run.py --smoke browser     # the smallest that takes every path (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.async_api import Playwright, async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from sizes import Size  # noqa: E402

from synthmon import Context, journey  # noqa: E402
from synthmon.model import RunRequest, Status, Target  # noqa: E402
from synthmon.runners.base import new_run_id  # noqa: E402
from synthmon.runners.browser.artifacts import ArtifactStore  # noqa: E402
from synthmon.runners.browser.pool import BrowserPool, PoolOptions  # noqa: E402
from synthmon.runners.browser.runner import BrowserRunner  # noqa: E402
from synthmon.safety.ratelimit import RateLimits  # noqa: E402

CONCURRENCY = 2
NO_SANDBOX = os.geteuid() == 0  # Chromium's sandbox does not start as root here


@journey(kind="browser", interval="1m", timeout="30s")
async def browse(ctx: Context) -> None:
    """Sign-in page, then the product list: two navigations, a few assertions."""
    async with ctx.step("login page"):
        r = await ctx.page.goto("/login")
        assert r is not None
        assert r.ok
        await ctx.page.fill("#email", "synthetic+shopper1@shop.example")
    async with ctx.step("products"):
        r = await ctx.page.goto("/products")
        assert r is not None
        assert r.ok
        assert await ctx.page.get_by_test_id("product-1").is_visible()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_shop() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthmon_demo", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz", timeout=0.5)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return proc, url
    proc.kill()
    raise RuntimeError("demo shop did not start")


class PeakRss:
    """Peak RSS of this process plus its descendants (shop excluded), sampled."""

    def __init__(self, exclude: int) -> None:
        self._exclude = exclude
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                if child.pid == self._exclude:
                    continue
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)


def _runner(pool: BrowserPool, artifacts: Path) -> BrowserRunner:
    return BrowserRunner(
        pool,
        pace=RateLimits(()).acquire,  # the benchmark's target has no rate limit
        store=ArtifactStore(artifacts),
        ua_suffix="synthmon/bench",
    )


def _pool(playwright: Playwright | None = None) -> BrowserPool:
    return BrowserPool(
        PoolOptions(no_sandbox=NO_SANDBOX, max_concurrency=CONCURRENCY), playwright=playwright
    )


async def _spread(runs: int, one: Any, concurrency: int = CONCURRENCY) -> list[Any]:
    """`runs` calls of `one()`, `concurrency` at a time."""
    queue = list(range(runs))
    results: list[Any] = []

    async def worker() -> None:
        while queue:
            queue.pop()
            results.append(await one())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def launch_per_run(
    target: Target, runs: int, artifacts: Path, concurrency: int = CONCURRENCY
) -> list[Status]:
    # One Playwright driver for all runs (as a naive daemon would keep), a Chromium
    # launched and closed per run: the only difference to (b) is the browser launch.
    async with async_playwright() as pw:

        async def one() -> Status:
            runner = _runner(_pool(pw), artifacts)
            try:
                return (await runner.run(RunRequest(browse, target, run_id=new_run_id()))).status
            finally:
                await runner.aclose()

        return await _spread(runs, one)


async def pooled(
    runner: BrowserRunner, target: Target, runs: int, concurrency: int = CONCURRENCY
) -> list[Status]:
    async def one() -> Status:
        return (await runner.run(RunRequest(browse, target, run_id=new_run_id()))).status

    return await _spread(runs, one, concurrency)


def _mb(n: float) -> float:
    return round(n / 1024 / 1024, 1)


async def bench(
    runs: int = 40,
    leak_runs: int = 500,
    leak_only: bool = False,
    first: int = 50,
    kill_every: int = 250,
) -> dict[str, Any]:
    shop, url = _start_shop()
    target = Target("bench", url, frozenset({"127.0.0.1"}))
    out: dict[str, Any] = {"runs_per_mode": runs}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            artifacts = Path(tmp)
            # Warm the page cache for Chromium's binary so (a) does not pay a cold start.
            await launch_per_run(target, 1, artifacts)

            for concurrency in () if leak_only else (CONCURRENCY, 1):
                out[f"concurrency_{concurrency}"] = await compare(
                    target, runs, artifacts, shop.pid, concurrency
                )
            if leak_runs:
                out["leak"] = await leak_check(target, leak_runs, artifacts, first, kill_every)
    finally:
        shop.kill()
        shop.wait()
    return out


async def compare(
    target: Target, runs: int, artifacts: Path, shop_pid: int, concurrency: int
) -> dict[str, Any]:
    """(a) and (b) with `concurrency` runs at a time."""
    out: dict[str, Any] = {}
    with PeakRss(shop_pid) as rss:
        t0 = time.monotonic()
        statuses = await launch_per_run(target, runs, artifacts, concurrency)
        elapsed = time.monotonic() - t0
    out["launch_per_run"] = {
        "runs_per_minute": round(runs / elapsed * 60, 1),
        "peak_rss_mb": _mb(rss.peak),
        "failed_runs": sum(s is not Status.SUCCESS for s in statuses),
    }
    runner = _runner(_pool(), artifacts)
    try:
        await pooled(runner, target, 2)  # launch outside the measurement
        with PeakRss(shop_pid) as rss:
            t0 = time.monotonic()
            statuses = await pooled(runner, target, runs, concurrency)
            elapsed = time.monotonic() - t0
        out["pooled"] = {
            "runs_per_minute": round(runs / elapsed * 60, 1),
            "peak_rss_mb": _mb(rss.peak),
            "failed_runs": sum(s is not Status.SUCCESS for s in statuses),
        }
    finally:
        await runner.aclose()
    out["speedup"] = round(
        out["pooled"]["runs_per_minute"] / out["launch_per_run"]["runs_per_minute"], 2
    )
    return out


def _chromium(me: psutil.Process) -> list[psutil.Process]:
    """Chromium processes descending from this process (started by our pools)."""
    found = []
    for p in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in p.name().lower():
                found.append(p)
    return found


def _kill_browser(me: psutil.Process) -> int:
    """SIGKILL the browser's main process (a Chromium whose parent is not Chromium)."""
    for p in _chromium(me):
        with contextlib.suppress(psutil.Error):
            parent = p.parent()
            if parent is None or "chrom" not in parent.name().lower():
                p.kill()
                return p.pid
    return 0


async def leak_check(
    target: Target, total: int, artifacts: Path, first: int = 50, kill_every: int = 250
) -> dict[str, Any]:
    """RSS after run `first` (50) and after run `total` of one pooled runner (recycling
    as configured by default: a fresh browser every 200 runs), with the browser killed
    (SIGKILL) every `kill_every` (250) runs; then shut down and count Chromium processes
    left."""
    runner = _runner(_pool(), artifacts)
    me = psutil.Process()
    marks: dict[int, dict[str, float]] = {}
    failed = crashes = 0
    try:
        done = 0
        checkpoints = sorted({first, total, *range(kill_every, total, kill_every)})
        for mark in checkpoints:
            statuses = await pooled(runner, target, mark - done)
            failed += sum(s is not Status.SUCCESS for s in statuses)
            done = mark
            if mark in (first, total):
                marks[mark] = {
                    "daemon_rss_mb": _mb(me.memory_info().rss),
                    "browser_rss_mb": _mb(runner.pool.rss_bytes()),
                }
            if mark % kill_every == 0 and mark != total and _kill_browser(me):
                crashes += 1
        launches = runner.pool.launches
    finally:
        await runner.aclose()
    await asyncio.sleep(1.0)
    left = len(_chromium(me))
    start, last = marks[first], marks[total]
    return {
        "runs": total,
        "first": first,
        f"after_{first}": start,
        f"after_{total}": last,
        "daemon_growth_pct": round(
            (last["daemon_rss_mb"] - start["daemon_rss_mb"]) / start["daemon_rss_mb"] * 100, 1
        ),
        "browser_launches": launches,
        "browser_kills": crashes,
        "failed_runs": failed,
        "chromium_left_after_shutdown": left,
    }


async def main(size: Size, leak_runs: int | None = None, leak_only: bool = False) -> dict[str, Any]:
    """Entry point of bench/run.py (`make bench`): prints the figures, returns them."""
    if leak_runs is None:
        leak_runs = size.pick(500, 60, 4)
    # Smoke: RSS marks after runs 2 and 4, the browser killed after run 3 (the next run
    # must relaunch it), instead of after 50, the last and every 250th.
    figures = await bench(
        runs=size.pick(40, 10, 2),
        leak_runs=leak_runs,
        leak_only=leak_only,
        first=size.pick(50, 50, 2),
        kill_every=size.pick(250, 250, 3),
    )
    print(json.dumps(figures, indent=2), flush=True)
    for concurrency in () if leak_only else (CONCURRENCY, 1):
        fig = figures[f"concurrency_{concurrency}"]
        lpr, pool = fig["launch_per_run"], fig["pooled"]
        print(
            f"== browser (concurrency {concurrency}): pooled {pool['runs_per_minute']} "
            f"runs/min vs launch-per-run {lpr['runs_per_minute']} ({fig['speedup']}x, "
            f"target >= 2x); peak RSS {pool['peak_rss_mb']} MB vs {lpr['peak_rss_mb']} MB",
            flush=True,
        )
    if "leak" in figures:
        leak = figures["leak"]
        print(
            f"== browser: daemon RSS growth run {leak['first']} -> {leak['runs']}: "
            f"{leak['daemon_growth_pct']}% (target <= 10%); {leak['browser_kills']} browser "
            f"kills, {leak['failed_runs']} failed runs, "
            f"{leak['chromium_left_after_shutdown']} Chromium processes left after shutdown",
            flush=True,
        )
    return figures


if __name__ == "__main__":
    import logging

    import structlog

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--leak-runs", type=int, help="runs of the leak check (0: skip it)")
    parser.add_argument(
        "--leak-only", action="store_true", help="only the leak check (no throughput comparison)"
    )
    args = parser.parse_args()
    # Figures on stdout; only warnings (failed captures, crashes) on stderr.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    # SIGTERM unwinds like Ctrl-C, so the demo shop child is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main(Size.of(quick=args.quick), args.leak_runs, args.leak_only))
