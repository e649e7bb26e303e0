"""History (issue 12): what recording costs per run, and how fast the API answers on
a million stored runs.

  (a) CPU per run of the daemon with 100 HTTP journeys every 2 s, history on vs off.
      The two sides run at the same time, each in a child process of its own against
      one shared loopback target, so that whatever else loads the machine hits both
      alike; several rounds, the median of the per-round ratios and their spread.
      Process CPU, so the history writer thread is counted; per thread (from
      /proc/self/task/*/schedstat, in ns) to see where a difference lies.
  (b) the same cost taken apart: the event loop's part (the fan-out's inline call,
      the slot record) and the writer thread's batches as they come at this rate
      (one commit a second, 50 runs and 50 slots).
  (c) a history file with 1,000,000 runs (100 pairs x 10,000 runs over the last 7 days,
      10 % failures with errors, slots, 50 incidents per pair) behind a real daemon with
      those 100 journeys: GET /api/journeys and GET /api/journeys/<name>/runs?limit=100
      (median and p95 of 50 requests each), the file size, and the time one statistics
      refresh takes in the writer thread.

Usage: python bench/history_bench.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from http_bench import start_target, write_journeys
from sizes import Size

from synthmon.model import RunResult, Status, StepResult
from synthmon.runners.base import new_run_id
from synthmon.sinks.history.records import IncidentRecord, SlotOutcome, SlotRecord
from synthmon.sinks.history.stats import WINDOWS
from synthmon.sinks.history.store import SqliteHistory

PAIRS = 100


def fill(path: Path, runs_per_pair: int) -> float:
    """Write the synthetic history; returns seconds taken."""
    store = SqliteHistory(path)
    now = time.time()
    t0 = time.monotonic()
    span = 7 * 86400.0
    step = span / runs_per_pair
    for p in range(PAIRS):
        name = f"j{p:04d}"
        runs, slots, incidents = [], [], []
        for i in range(runs_per_pair):
            at = now - span + i * step
            bad = i % 10 == 0
            status = Status.FAILURE if bad else Status.SUCCESS
            steps = (
                StepResult("login", Status.SUCCESS, 0.12),
                StepResult(
                    "health",
                    status,
                    0.05,
                    error_message="GET /healthz answered 500 (upstream timeout)" if bad else None,
                ),
            )
            runs.append(
                RunResult(
                    name,
                    "demo",
                    f"{p:04x}{i:028x}",
                    f"{p:04x}{i:028x}",
                    status,
                    at,
                    0.17,
                    steps=steps,
                    failed_step="health" if bad else None,
                    error_type="AssertionError" if bad else None,
                    error_message="GET /healthz answered 500 (upstream timeout)" if bad else None,
                    scheduled_at=at,
                )
            )
            slots.append(
                SlotRecord(
                    name,
                    "demo",
                    at,
                    SlotOutcome.FAILED if bad else SlotOutcome.PASSED,
                    run_id=f"{p:04x}{i:028x}",
                    recorded_at=at,
                )
            )
        for k in range(50):
            start = now - span + k * (span / 50)
            incidents.append(
                IncidentRecord(
                    "SyntheticJourneyFailed",
                    name,
                    "demo",
                    k + 1,
                    "critical",
                    start,
                    start + 20,
                    None,
                    "health",
                    "500",
                    None,
                )
            )
        store.write(runs, slots, incidents)
        store.write(
            [],
            [],
            [
                IncidentRecord(
                    i.alertname,
                    i.journey,
                    i.target,
                    i.incident,
                    i.severity,
                    0,
                    0,
                    i.started_at + 300,
                )
                for i in incidents[:-1]
            ],
        )
    store.maintain(now, 1e12, 1 << 40)  # checkpoint the WAL into the file
    store.close()
    return time.monotonic() - t0


def refresh_seconds(path: Path) -> float:
    store = SqliteHistory(path)
    now = time.time()
    t0 = time.monotonic()
    for p in range(PAIRS):
        store.pair_inputs(f"j{p:04d}", "demo", now, WINDOWS)
    took = time.monotonic() - t0
    store.close()
    return took


async def timed(client: httpx.AsyncClient, url: str, n: int = 50) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(url)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
    times.sort()
    return statistics.median(times), times[int(n * 0.95) - 1]


async def api_on_a_million(runs_per_pair: int) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from synthmon.config.settings import load_settings
    from synthmon.daemon import Daemon
    from synthmon.runtime.logs import configure_logging

    devnull = open(os.devnull, "w")
    configure_logging(level="info", fmt="json", stream=devnull)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        db = data / "history.sqlite3"
        fill_s = fill(db, runs_per_pair)
        size = db.stat().st_size
        refresh = refresh_seconds(db)
        jdir = Path(tmp) / "journeys"
        jdir.mkdir()
        write_journeys(jdir, PAIRS, "1h")
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(
            f'journeys_dir = "{jdir}"\ndata_dir = "{data}"\n[server]\nlisten = "127.0.0.1:0"\n'
            '[targets.demo]\nbase_url = "http://127.0.0.1:9"\n'
        )
        daemon = Daemon(load_settings(cfg), registry=CollectorRegistry())
        await daemon.start()
        try:
            async with httpx.AsyncClient(base_url=daemon.server.url) as c:
                # Wait for the first statistics refresh (figures in /api/journeys).
                for _ in range(600):
                    j = (await c.get("/api/journeys")).json()["journeys"]
                    if j and j[0]["stats"]:
                        break
                    await asyncio.sleep(0.1)
                journeys = await timed(c, "/api/journeys")
                last100 = await timed(c, "/api/journeys/j0042/runs?limit=100")
        finally:
            await daemon.stop(grace=2)
    devnull.close()
    total = PAIRS * runs_per_pair
    return {
        "runs": total,
        "fill_seconds": fill_s,
        "bytes": size,
        "bytes_per_million": size * 1_000_000 / total,
        "refresh_seconds": refresh,
        "journeys": journeys,
        "last100": last100,
    }


def thread_cpu() -> dict[str, int]:
    """CPU nanoseconds per thread name of this process (schedstat: ns, not ticks)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, int] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        name = names.get(int(task.name), "other")
        name = "loop" if name == "MainThread" else name
        out[name] = out.get(name, 0) + ns
    return out


async def side(url: str, history: bool, seconds: float) -> dict[str, Any]:
    """One side in this process: the daemon with 100 journeys every 2 s, measured for
    `seconds` after one interval of warm-up."""
    from prometheus_client import CollectorRegistry

    from synthmon.config.settings import load_settings
    from synthmon.daemon import Daemon
    from synthmon.runtime.logs import configure_logging

    devnull = open(os.devnull, "w")
    configure_logging(level="info", fmt="json", stream=devnull)
    with tempfile.TemporaryDirectory() as tmp:
        jdir = Path(tmp) / "journeys"
        jdir.mkdir()
        write_journeys(jdir, PAIRS, "2s")
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(
            f'journeys_dir = "{jdir}"\ndata_dir = "{tmp}/data"\n'
            '[server]\nlisten = "127.0.0.1:0"\n[scheduler]\nmax_concurrency = 200\n'
            f'[targets.demo]\nbase_url = "{url}"\nmax_concurrency = 200\n'
            + ("" if history else "[history]\nenabled = false\n")
        )
        daemon = Daemon(load_settings(cfg), registry=CollectorRegistry())
        runs = 0

        class Count:
            def record(self, result: Any) -> None:
                nonlocal runs
                runs += 1

        daemon.fanout._inline.append(("count", Count().record))
        await daemon.start()
        try:
            await asyncio.sleep(2.5)
            runs0, cpu0, threads0 = runs, time.process_time(), thread_cpu()
            await asyncio.sleep(seconds)
            cpu, threads1, done = time.process_time() - cpu0, thread_cpu(), runs - runs0
        finally:
            await daemon.stop(grace=5)
    devnull.close()
    per_thread = {k: (v - threads0.get(k, 0)) / 1e9 / max(done, 1) for k, v in threads1.items()}
    return {"runs": done, "cpu_per_run": cpu / max(done, 1), "threads": per_thread}


def run_sides(url: str, seconds: float) -> dict[str, dict[str, Any]]:
    """Both sides at once, each a child process (`--side`)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, __file__, "--side", name, "--url", url, "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("off", "on")
    }
    out = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"the history-{name} side failed (exit {proc.returncode})")
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out


async def per_run_parts(n: int) -> dict[str, float]:
    """The history's own work per run, measured alone: the event loop's part (the
    fan-out's inline `record` and the slot record) and the writer thread's, in
    batches of 50 runs and 50 slots, one commit each (a second's worth here)."""
    from prometheus_client import CollectorRegistry

    from synthmon.config.settings import HistoryConfig
    from synthmon.sinks.fanout import Fanout
    from synthmon.sinks.history.sink import HistorySink

    now = time.time()
    results = [
        RunResult(
            f"j{i % PAIRS:04d}",
            "demo",
            new_run_id(),
            new_run_id(),
            Status.SUCCESS,
            now + i / 50,
            0.1,
            steps=(StepResult("health", Status.SUCCESS, 0.05),),
            scheduled_at=now + i / 50,
        )
        for i in range(n)
    ]
    slots = [
        SlotRecord(r.journey, r.target, r.started_at, SlotOutcome.PASSED, None, r.run_id)
        for r in results
    ]
    with tempfile.TemporaryDirectory() as tmp:
        sink = HistorySink(HistoryConfig(), data_dir=Path(tmp), registry=CollectorRegistry())
        await sink.open()  # the writer thread is not started: the queue only fills
        sink.set_catalog({(r.journey, r.target) for r in results})
        fanout = Fanout([("history", sink)], max_queue=n + 10)
        fanout.start()
        cpu0 = time.thread_time()
        for r, sl in zip(results, slots, strict=True):
            fanout.emit(r)
            sink.record_slot(sl)
        loop_side = (time.thread_time() - cpu0) / n
        await fanout.close()
        await sink.stop()
        store = SqliteHistory(Path(tmp) / "w.sqlite3")
        cpu0 = time.thread_time()
        for i in range(0, n, 50):
            store.write(results[i : i + 50], slots[i : i + 50], [])
        writer = (time.thread_time() - cpu0) / n
        store.close()
    return {"loop_side": loop_side, "writer": writer}


async def main(
    size: Size, rounds: int | None = None, seconds: float | None = None
) -> dict[str, Any]:
    rounds = rounds or size.pick(5, 1, 1)
    # 60 s: each window holds one statistics refresh (stats_interval), as production does.
    seconds = seconds or size.pick(60, 8, 1)
    proc, url = start_target()
    results: list[dict[str, dict[str, Any]]] = []
    print(
        f"== History: CPU per run, 100 HTTP journeys every 2 s, on and off side by side, "
        f"{rounds} round(s) of {seconds:g} s =="
    )
    try:
        for i in range(rounds):
            r = run_sides(url, seconds)
            results.append(r)
            on, off = r["on"], r["off"]
            print(
                f"  round {i + 1}: off {off['cpu_per_run'] * 1000:.3f} ms ({off['runs']} runs)  "
                f"on {on['cpu_per_run'] * 1000:.3f} ms ({on['runs']} runs)  "
                f"ratio {on['cpu_per_run'] / off['cpu_per_run']:.3f}   "
                f"loop thread +{(on['threads']['loop'] - off['threads']['loop']) * 1e6:.0f} us, "
                f"writer {on['threads'].get('synthmon-history', 0) * 1e6:.0f} us per run",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait()
    ratios = sorted(r["on"]["cpu_per_run"] / r["off"]["cpu_per_run"] for r in results)
    cpu_off = statistics.median(r["off"]["cpu_per_run"] for r in results)
    cpu_on = statistics.median(r["on"]["cpu_per_run"] for r in results)
    writer = statistics.median(r["on"]["threads"].get("synthmon-history", 0) for r in results)
    loop_diff = statistics.median(
        r["on"]["threads"]["loop"] - r["off"]["threads"]["loop"] for r in results
    )
    ratio = statistics.median(ratios)
    print(f"  history off   {cpu_off * 1000:7.3f} ms CPU/run (median of rounds)")
    print(f"  history on    {cpu_on * 1000:7.3f} ms CPU/run (median of rounds)")
    print(
        f"  on/off        {ratio:7.3f}x median of per-round ratios, spread "
        f"{ratios[0]:.3f}-{ratios[-1]:.3f}   (target <= 1.05x)"
    )
    print(
        f"  per thread (medians): writer {writer * 1e6:.0f} us/run, "
        f"event loop thread on-off {loop_diff * 1e6:+.0f} us/run"
    )
    cost = await per_run_parts(size.pick(20_000, 5_000, 100))
    added = cost["loop_side"] + cost["writer"]
    print(
        f"  parts alone: event loop (fan-out record, slot) {cost['loop_side'] * 1e6:5.1f} us/run, "
        f"writer thread (1 commit per 50 runs) {cost['writer'] * 1e6:5.1f} us/run = "
        f"{added / cpu_off * 100:.1f} % of a run's CPU with history off"
    )
    big = await api_on_a_million(size.pick(10_000, 1_000, 10))
    print(f"== History: API on {big['runs']:,} stored runs ==")
    print(
        f"  GET /api/journeys              median {big['journeys'][0] * 1000:6.1f} ms  "
        f"p95 {big['journeys'][1] * 1000:6.1f} ms   (target <= 50 ms)"
    )
    print(
        f"  GET .../runs?limit=100          median {big['last100'][0] * 1000:6.1f} ms  "
        f"p95 {big['last100'][1] * 1000:6.1f} ms   (target <= 20 ms)"
    )
    print(
        f"  file {big['bytes'] / 1e6:.0f} MB = {big['bytes_per_million'] / 1e6:.0f} MB per million "
        f"runs; filled in {big['fill_seconds']:.0f} s; one statistics refresh "
        f"(100 pairs, 3 windows) {big['refresh_seconds']:.2f} s in the writer thread"
    )
    return {"cpu_off": cpu_off, "cpu_on": cpu_on, "ratio": ratio, "ratios": ratios, **cost, **big}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--side", choices=("on", "off"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        print(json.dumps(asyncio.run(side(args.url, args.side == "on", args.seconds))))
    else:
        asyncio.run(main(Size.of(quick=args.quick), args.rounds, args.seconds))
