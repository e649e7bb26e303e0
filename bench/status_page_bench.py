"""Status pages (issue 13): server render time of `/` and of a journey page with 500
journeys and 1,000,000 stored runs (target: <= 100 ms).

A history file with 500 pairs x 2,000 runs spread over the last 90 days (10 % failed
with errors and steps, 20 incidents per pair, the last one of every tenth pair still
open) sits behind a real daemon with those 500 journeys (`[history] max_age = "90d"`,
so every uptime cell has data: the largest page). Measured, 30 requests each:

  render   the handler's own work in-process: rows + HTML for `/` (select + render),
           and the journey page's history reads + HTML (what the event loop and the
           history thread spend; no HTTP);
  http     GET over loopback as a browser asks (gzip) and uncompressed, median and p95,
           with the page's size.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from http_bench import write_journeys
from sizes import Size

from synthmon.model import RunResult, Status, StepResult
from synthmon.sinks.history.records import IncidentRecord
from synthmon.sinks.history.store import SqliteHistory

PAIRS = 500
DAYS = 90


def fill(path: Path, runs_per_pair: int, now: float) -> float:
    store = SqliteHistory(path)
    t0 = time.monotonic()
    span = DAYS * 86400.0
    step = span / runs_per_pair
    for p in range(PAIRS):
        name = f"j{p:04d}"
        runs = []
        for i in range(runs_per_pair):
            at = now - span + i * step
            bad = i % 10 == 0
            status = Status.FAILURE if bad else Status.SUCCESS
            error = "GET /healthz answered 500 (upstream timeout)" if bad else None
            runs.append(
                RunResult(
                    name,
                    "demo",
                    f"{p:04x}{i:028x}",
                    f"{p:04x}{i:028x}",
                    status,
                    at,
                    0.17 + (i % 7) / 100,
                    steps=(
                        StepResult("login", Status.SUCCESS, 0.12),
                        StepResult("health", status, 0.05, error_message=error),
                    ),
                    failed_step="health" if bad else None,
                    error_type="AssertionError" if bad else None,
                    error_message=error,
                    scheduled_at=at,
                )
            )
        incidents = []
        for k in range(20):
            start = now - span + (k + 0.5) * (span / 20)
            still_open = k == 19 and p % 10 == 0
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
                    "GET /healthz answered 500",
                    None,
                )
            )
            if not still_open:
                incidents.append(
                    IncidentRecord(
                        "SyntheticJourneyFailed", name, "demo", k + 1, "critical", 0, 0, start + 600
                    )
                )
        store.write(runs, [], [i for i in incidents if i.ended_at is None])
        store.write([], [], [i for i in incidents if i.ended_at is not None])
    store.maintain(now, 1e12, 1 << 40)  # checkpoint the WAL into the file
    store.close()
    return time.monotonic() - t0


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times), times[max(int(n * 0.95) - 1, 0)]


async def curl_timed(url: str, gzip: bool, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec(
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total}",
            *(["--compressed"] if gzip else []),
            url,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await proc.communicate()
        assert proc.returncode == 0, f"curl {url} failed"
        times.append(float(stdout))
    times.sort()
    return statistics.median(times), times[max(int(n * 0.95) - 1, 0)]


def cpu_timed(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """CPU seconds of this thread per call (median, p95): what a render costs, apart
    from waiting for a busy machine's cores (wall time says that part)."""
    times = []
    for _ in range(n):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    times.sort()
    return statistics.median(times), times[max(int(n * 0.95) - 1, 0)]


async def main(size: Size) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from synthmon.config.settings import load_settings
    from synthmon.daemon import Daemon
    from synthmon.runtime.logs import configure_logging
    from synthmon.web.pages import journey, overview
    from synthmon.web.pages.html import Memo
    from synthmon.web.pages.rows import build_row, select

    runs_per_pair = size.pick(2000, 100, 5)
    n = size.pick(30, 5, 2)
    devnull = open(os.devnull, "w")
    configure_logging(level="info", fmt="json", stream=devnull)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        now = time.time()
        fill_s = fill(data / "history.sqlite3", runs_per_pair, now)
        jdir = Path(tmp) / "journeys"
        jdir.mkdir()
        write_journeys(jdir, PAIRS, "1h")
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(
            f'journeys_dir = "{jdir}"\ndata_dir = "{data}"\n[server]\nlisten = "127.0.0.1:0"\n'
            '[history]\nmax_age = "90d"\n[targets.demo]\nbase_url = "http://127.0.0.1:9"\n'
        )
        daemon = Daemon(load_settings(cfg), registry=CollectorRegistry())
        await daemon.start()
        try:
            history = daemon.history
            assert history is not None
            t0 = time.monotonic()
            while not history.overview.days(f"j{PAIRS - 1:04d}", "demo"):
                await asyncio.sleep(0.1)
            first_refresh = time.monotonic() - t0

            memo = (Memo(), Memo(limit=200_000))

            async def render_index() -> str:
                return overview.render(daemon, select(daemon, {}), memo)

            t0, c0 = time.perf_counter(), time.thread_time()
            await render_index()
            out["render_index_cold"] = (time.perf_counter() - t0, time.thread_time() - c0)

            async def render_journey() -> str:
                j, t = daemon.pairs["j0040@demo"]
                row = build_row(daemon, j, t, time.time())
                h = await history.query(
                    lambda s: journey.load(s, j.name, t.name, row.since, time.time(), logs=True)
                )
                return journey.render(daemon, row, h, [t.name])

            out["render_index"] = await timed(render_index, n)
            # A statistics refresh (every [history] stats_interval) replaces every
            # pair's figures: the next render rebuilds each row, but only the uptime
            # cells that changed (today's).
            last = f"j{PAIRS - 1:04d}"
            before = history.overview.days(last, "demo")
            # What the periodic refresh does: every pair's figures replaced at once.
            history._mark_dirty((f"j{i:04d}", "demo") for i in range(PAIRS))
            while history.overview.days(last, "demo") is before:
                await asyncio.sleep(0.05)
            t0, c0 = time.perf_counter(), time.thread_time()
            await render_index()
            out["render_index_after_refresh"] = (
                time.perf_counter() - t0,
                time.thread_time() - c0,
            )
            out["render_index_cpu"] = cpu_timed(
                lambda: overview.render(daemon, select(daemon, {}), memo), n
            )
            j40, t40 = daemon.pairs["j0040@demo"]
            row40 = build_row(daemon, j40, t40, time.time())
            h40 = await history.query(
                lambda s: journey.load(s, "j0040", "demo", row40.since, time.time(), logs=True)
            )
            out["render_journey_html_cpu"] = cpu_timed(
                lambda: journey.render(daemon, row40, h40, ["demo"]), n
            )
            out["journey_reads_cpu"] = cpu_timed(
                lambda: journey.load(
                    history._store,  # type: ignore[arg-type]
                    "j0040",
                    "demo",
                    row40.since,
                    time.time(),
                    logs=True,
                ),
                n,
            )
            out["render_journey"] = await timed(render_journey, n)
            out["index_bytes"] = len((await render_index()).encode())
            # HTTP from another process (curl), so the client's work is not the
            # daemon's: time to the last byte over loopback.
            for label, path in (("index", "/"), ("journey", "/journeys/j0040?target=demo")):
                for enc in ("gzip", "identity"):
                    out[f"http_{label}_{enc}"] = await curl_timed(
                        daemon.server.url + path, enc == "gzip", n
                    )
            async with httpx.AsyncClient(base_url=daemon.server.url, timeout=30) as c:
                r = await c.get("/", headers={"Accept-Encoding": "gzip"})
                out["index_gzip_bytes"] = int(r.headers.get("Content-Length") or 0)
        finally:
            await daemon.stop(grace=2)
    devnull.close()
    ms = 1000
    print(f"history: {PAIRS * runs_per_pair:,} runs of {PAIRS} pairs over {DAYS} days ")
    print(f"  (filled in {fill_s:.0f} s; first overview refresh {first_refresh:.1f} s)")
    wall, cpu = out["render_index_cold"]
    print(f"render_index, first (cold)   {wall * ms:7.1f} ms ({cpu * ms:.1f} ms CPU)")
    wall, cpu = out["render_index_after_refresh"]
    print(f"render_index after a stats refresh {wall * ms:7.1f} ms ({cpu * ms:.1f} ms CPU)")
    for key in (
        "render_index",
        "render_index_cpu",
        "render_journey",
        "render_journey_html_cpu",
        "journey_reads_cpu",
    ):
        med, p95 = out[key]
        print(f"{key:28s} median {med * ms:7.1f} ms   p95 {p95 * ms:7.1f} ms")
    for key in sorted(k for k in out if k.startswith("http_")):
        med, p95 = out[key]
        print(f"{key:28s} median {med * ms:7.1f} ms   p95 {p95 * ms:7.1f} ms")
    print(
        f"/ is {out['index_bytes'] / 1e6:.2f} MB of HTML, "
        f"{out['index_gzip_bytes'] / 1e6:.2f} MB gzipped"
    )
    return out
