"""History (issue 12): what recording costs per run, and how fast the API answers on
a million stored runs.

  (a) CPU per run of the daemon with 100 HTTP journeys, history on vs off, alternating
      off/on/off/on so that machine load drifts hit both sides alike; process CPU
      includes the history writer thread.
  (b) a history file with 1,000,000 runs (100 pairs x 10,000 runs over the last 7 days,
      10 % failures with errors, slots, 50 incidents per pair) behind a real daemon with
      those 100 journeys: GET /api/journeys and GET /api/journeys/<name>/runs?limit=100
      (median and p95 of 50 requests each), the file size, and the time one statistics
      refresh takes in the writer thread.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from http_bench import daemon_run, start_target, write_journeys

from synthmon.model import RunResult, Status, StepResult
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


async def per_run_cost(n: int) -> dict[str, float]:
    """CPU the history adds to one run, part by part, measured alone (robust against a
    loaded machine, where the end-to-end on/off comparison drowns in noise): the fan-out
    hop to the history sink and its emit, the slot record, and the writer thread."""
    from prometheus_client import CollectorRegistry

    from synthmon.config.settings import HistoryConfig
    from synthmon.sinks.fanout import Fanout
    from synthmon.sinks.history.sink import HistorySink

    with tempfile.TemporaryDirectory() as tmp:
        sink = HistorySink(
            HistoryConfig(flush_interval=0.2), data_dir=Path(tmp), registry=CollectorRegistry()
        )
        await sink.open()
        now = time.time()
        results = [
            RunResult(
                "j0001",
                "demo",
                f"{i:032x}",
                f"{i:032x}",
                Status.SUCCESS,
                now + i,
                0.1,
                steps=(
                    StepResult("login", Status.SUCCESS, 0.1),
                    StepResult("health", Status.SUCCESS, 0.05),
                ),
                scheduled_at=now + i,
            )
            for i in range(n)
        ]
        fanout = Fanout([("history", sink)], max_queue=n + 10)
        fanout.start()
        cpu0 = time.process_time()
        for r in results:
            fanout.emit(r)
            sink.record_slot(
                SlotRecord(r.journey, r.target, r.started_at, SlotOutcome.PASSED, None, r.run_id)
            )
        await fanout.flush()
        loop_side = (time.process_time() - cpu0) / n
        # The writer thread's share: write the same records in one batch.
        store = SqliteHistory(Path(tmp) / "w.sqlite3")
        slots = [SlotRecord(r.journey, r.target, r.started_at, SlotOutcome.PASSED) for r in results]
        cpu0 = time.process_time()
        for i in range(0, n, 1000):
            store.write(results[i : i + 1000], slots[i : i + 1000], [])
        writer = (time.process_time() - cpu0) / n
        store.close()
        await fanout.close()
        await sink.stop()
    return {"loop_side": loop_side, "writer": writer}


async def main(quick: bool) -> dict[str, Any]:
    proc, url = start_target()
    off = "[history]\nenabled = false\n"
    try:
        seconds = 6 if quick else 20
        sides: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(1 if quick else 2):
            for side, extra in (("off", off), ("on", "")):
                r = await daemon_run(url, 100, "2s", seconds, extra_toml=extra)
                sides[side].append(r["cpu_per_run"])
    finally:
        proc.terminate()
        proc.wait()
    cpu_off, cpu_on = statistics.median(sides["off"]), statistics.median(sides["on"])
    cost = await per_run_cost(5_000 if quick else 50_000)
    big = await api_on_a_million(1_000 if quick else 10_000)
    print("== History: CPU per run, 100 HTTP journeys every 2 s ==")
    print(f"  history off   {cpu_off * 1000:7.3f} ms CPU/run   (runs: {sides['off']})")
    print(f"  history on    {cpu_on * 1000:7.3f} ms CPU/run   (runs: {sides['on']})")
    print(f"  on/off        {cpu_on / cpu_off:7.3f}x   (target <= 1.05x)")
    added = cost["loop_side"] + cost["writer"]
    print(
        f"  parts: event loop (fan-out hop, emit, slot) {cost['loop_side'] * 1e6:5.1f} us/run, "
        f"writer thread {cost['writer'] * 1e6:5.1f} us/run = {added / cpu_off * 100:.1f} % "
        "of a run's CPU with history off"
    )
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
    return {"cpu_off": cpu_off, "cpu_on": cpu_on, **cost, **big}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    asyncio.run(main(p.parse_args().quick))
