"""HTTP journeys: daemon CPU per run against the raw httpx floor, and scheduler lag.

Both sides run in this one process, against the same demo shop running in a child
process (so the server's CPU is not counted):

  (a) raw: a loop doing what one run does by hand: a fresh httpx.AsyncClient on a
      shared SSL context with its own connection pool, one GET, check the status, close;
  (b) daemon: the real Daemon (APScheduler, runner, sinks, metrics, JSON logs to
      /dev/null) running N simple HTTP journeys.

CPU is process CPU time (user + system) divided by completed runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import certifi
import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_shop() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthmon_demo", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/healthz", timeout=0.5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("demo shop did not start")


async def raw_floor(url: str, runs: int) -> float:
    """CPU seconds per run for the hand-written loop."""
    ctx = ssl.create_default_context(cafile=certifi.where())
    # Warm up imports and code paths.
    for _ in range(20):
        async with httpx.AsyncClient(base_url=url, verify=ctx) as c:
            (await c.get("/healthz")).raise_for_status()
    cpu0 = time.process_time()
    for _ in range(runs):
        transport = httpx.AsyncHTTPTransport(verify=ctx, retries=0)
        async with httpx.AsyncClient(base_url=url, transport=transport, trust_env=False) as c:
            r = await c.get("/healthz")
            assert r.status_code == 200
    return (time.process_time() - cpu0) / runs


JOURNEY = textwrap.dedent(
    """
    from synthmon import Context, journey

    def make(i: int):
        @journey(name=f"j{i:04d}", interval="{interval}", timeout="1s")
        async def j(ctx: Context) -> None:
            async with ctx.step("health"):
                r = await ctx.http.get("/healthz")
                assert r.status_code == 200
        return j

    {names}
    """
)


def write_journeys(directory: Path, n: int, interval: str) -> None:
    names = "\n".join(f"j{i:04d} = make({i})" for i in range(n))
    (directory / "many.py").write_text(
        JOURNEY.replace("{interval}", interval).replace("{names}", names)
    )


async def daemon_run(
    url: str, n: int, interval: str, seconds: float, extra_toml: str = ""
) -> dict[str, Any]:
    """Run the daemon with `n` journeys for `seconds` (after one full interval of
    warm-up so every journey has started); CPU per run and start lag."""
    from prometheus_client import CollectorRegistry

    from synthmon.config.durations import parse_duration
    from synthmon.config.settings import load_settings
    from synthmon.daemon import Daemon
    from synthmon.runtime.logs import configure_logging

    devnull = open(os.devnull, "w")
    configure_logging(level="info", fmt="json", stream=devnull)
    with tempfile.TemporaryDirectory() as tmp:
        jdir = Path(tmp) / "journeys"
        jdir.mkdir()
        write_journeys(jdir, n, interval)
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(
            f'journeys_dir = "{jdir}"\ndata_dir = "{tmp}/data"\n'
            f'[server]\nlisten = "127.0.0.1:0"\n'
            f"[scheduler]\nmax_concurrency = 200\n"
            f'[targets.demo]\nbase_url = "{url}"\nmax_concurrency = 200\n{extra_toml}'
        )
        daemon = Daemon(load_settings(cfg), registry=CollectorRegistry())
        lags: list[float] = []
        original = daemon.scheduler._on_start

        def on_start(key: str, lag: float) -> None:
            lags.append(lag)
            original(key, lag)

        daemon.scheduler._on_start = on_start
        runs = 0

        class Count:
            async def emit(self, result: Any) -> None:
                nonlocal runs
                runs += 1

        daemon.fanout._sinks.append(("count", Count()))
        daemon.fanout._queues["count"] = asyncio.Queue()
        await daemon.start()
        try:
            await asyncio.sleep(parse_duration(interval) + 0.5)
            runs0, lags0 = runs, len(lags)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            done = runs - runs0
            window = sorted(lags[lags0:])
        finally:
            await daemon.stop(grace=5)
        devnull.close()
    return {
        "journeys": n,
        "runs": done,
        "runs_per_second": done / wall,
        "cpu_per_run": cpu / max(done, 1),
        "cpu_share": cpu / wall,
        "lag_p50": statistics.median(window) if window else float("nan"),
        "lag_p99": window[int(len(window) * 0.99) - 1] if window else float("nan"),
        "lag_max": window[-1] if window else float("nan"),
    }


async def main(quick: bool) -> dict[str, Any]:
    proc, url = start_shop()
    try:
        runs = 300 if quick else 2000
        raw = await raw_floor(url, runs)
        cpu = await daemon_run(url, 100, "2s", 6 if quick else 20)
        lag = await daemon_run(url, 1000, "10s", 10 if quick else 30)
    finally:
        proc.terminate()
        proc.wait()
    ratio = cpu["cpu_per_run"] / raw
    print("== HTTP journeys: CPU per run (lower is better) ==")
    print(f"  raw httpx loop          {raw * 1000:7.3f} ms CPU/run  ({runs} runs)")
    print(
        f"  daemon, 100 journeys    {cpu['cpu_per_run'] * 1000:7.3f} ms CPU/run  "
        f"({cpu['runs']} runs, {cpu['runs_per_second']:.0f} runs/s)"
    )
    print(f"  ratio daemon/raw        {ratio:7.2f}x   (target <= 1.30x)")
    print("== Scheduler start lag, 1000 journeys every 10 s ==")
    print(
        f"  p50 {lag['lag_p50'] * 1000:6.1f} ms   p99 {lag['lag_p99'] * 1000:6.1f} ms   "
        f"max {lag['lag_max'] * 1000:6.1f} ms   (target p99 <= 50 ms; {lag['runs']} runs, "
        f"{lag['runs_per_second']:.0f} runs/s, {lag['cpu_share'] * 100:.0f}% of one core)"
    )
    return {"raw_cpu_per_run": raw, "daemon": cpu, "ratio": ratio, "lag": lag}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer runs, for a smoke check")
    asyncio.run(main(p.parse_args().quick))
