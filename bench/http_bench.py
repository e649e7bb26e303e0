"""HTTP journeys: daemon CPU per run against the raw httpx floor and against
blackbox_exporter, scheduler lag, and the 5,000-journey scale point.

All sides hit the same loopback target (bench/target.py, a minimal asyncio HTTP
server) running in a child process (its CPU not counted):

  (a) raw: a loop doing what one run does by hand: a fresh httpx.AsyncClient on a
      shared SSL context with its own connection pool, one GET, check the status, close;
  (b) daemon: the real Daemon (scheduler, runner, sinks, metrics, JSON logs to
      /dev/null) running N simple HTTP journeys, in this process;
  (c) blackbox: Prometheus' blackbox_exporter (Debian's prometheus-blackbox-exporter,
      module http_2xx) probing the same URL through /probe at the daemon's run rate;
      the CPU counted is the exporter process's only.

CPU is process CPU time (user + system) divided by completed runs (probes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
import psutil
from sizes import Size

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_target() -> tuple[subprocess.Popen[bytes], str]:
    """The loopback target (bench/target.py) in a child process: its CPU not counted."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("target.py")), str(port)],
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
    raise RuntimeError("benchmark target did not start")


def httpx_default_transport(ctx: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(verify=ctx, retries=0)


async def raw_floor(url: str, runs: int, *, streams: bool = False) -> float:
    """CPU seconds per run for the hand-written loop: httpx as it comes (on anyio), or
    with `streams` on the asyncio network backend the daemon's runner uses
    (src/synthmon/runners/streams.py), the like-for-like floor."""
    from synthmon.runners.streams import asyncio_transport

    transport = asyncio_transport if streams else httpx_default_transport

    ctx = ssl.create_default_context(cafile=certifi.where())
    # Warm up imports and code paths.
    for _ in range(20):
        async with httpx.AsyncClient(base_url=url, transport=transport(ctx)) as c:
            (await c.get("/healthz")).raise_for_status()
    cpu0 = time.process_time()
    for _ in range(runs):
        async with httpx.AsyncClient(base_url=url, transport=transport(ctx), trust_env=False) as c:
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
    url: str,
    n: int,
    interval: str,
    seconds: float,
    scrape_every: float | None = None,
    extra_toml: str = "",
    top_toml: str = "",
    daemon_kwargs: dict[str, Any] | None = None,
    workers: int = 0,
) -> dict[str, Any]:
    """Run the daemon with `n` journeys for `seconds` (after one full interval of
    warm-up so every journey has started); CPU per run and start lag. With
    `scrape_every`, /metrics is scraped that often (as Prometheus would), timed and sized.
    With `workers`, HTTP runs go to that many worker processes ([scheduler] workers):
    their CPU is counted too (`cores`), and `start_p99` includes the hand-off."""
    from prometheus_client import CollectorRegistry

    from synthmon.config.durations import parse_duration
    from synthmon.config.settings import load_settings
    from synthmon.daemon import Daemon
    from synthmon.runtime.interpreter import tune_for_daemon
    from synthmon.runtime.logs import configure_logging

    devnull = open(os.devnull, "w")
    configure_logging(level="info", fmt="json", stream=devnull)
    with tempfile.TemporaryDirectory() as tmp:
        jdir = Path(tmp) / "journeys"
        jdir.mkdir()
        write_journeys(jdir, n, interval)
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(
            f'{top_toml}journeys_dir = "{jdir}"\ndata_dir = "{tmp}/data"\n'
            f'[server]\nlisten = "127.0.0.1:0"\n'
            f"[scheduler]\nmax_concurrency = 200\nworkers = {workers}\n"
            f'[targets.demo]\nbase_url = "{url}"\nmax_concurrency = 200\n{extra_toml}'
        )
        settings = load_settings(cfg)
        tune_for_daemon()  # as `synthmon run` does before it builds the daemon
        daemon = Daemon(settings, registry=CollectorRegistry(), **(daemon_kwargs or {}))
        lags: list[float] = []
        original = daemon.scheduler._on_start

        def on_start(key: str, lag: float) -> None:
            lags.append(lag)
            original(key, lag)

        daemon.scheduler._on_start = on_start
        runs = 0

        # When each first attempt really started (in the runner, in whichever process)
        # against its slot: the scheduler's lag plus the executor and any hand-off.
        starts: list[float] = []

        class Count:
            def record(self, result: Any) -> None:
                nonlocal runs
                runs += 1
                if result.scheduled_at is not None and result.attempt == 1:
                    starts.append(result.started_at - result.scheduled_at)

        # Inline (like the metrics sink): a queued sink would add a hop production lacks.
        daemon.fanout._inline.append(("count", Count().record))
        scrapes: list[tuple[float, int, int]] = []

        async def scraper(every: float) -> None:
            # An outside process, as Prometheus is: a client on the daemon's own loop
            # would compete with the runs for it and be charged to the daemon's CPU.
            while True:
                t0 = time.monotonic()
                # As Prometheus scrapes: gzip asked for. The scrape's wall time is what a
                # scrape_timeout is measured against; the sizes are the body as sent and
                # as text (stderr, stdout).
                curl = await asyncio.create_subprocess_exec(
                    "bash",
                    "-c",
                    "set -o pipefail; curl -sS --max-time 60 -H 'Accept-Encoding: gzip' "
                    '"$0" | tee >(wc -c >&2) | gzip -dc | wc -c',
                    f"{daemon.server.url}/metrics",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await curl.communicate()
                if curl.returncode == 0:
                    sent = int(err.split()[-1]) if err.split() else 0
                    scrapes.append((time.monotonic() - t0, int(out or 0), sent))
                else:
                    print(
                        f"  scrape failed after {time.monotonic() - t0:.1f} s "
                        f"(curl exit {curl.returncode}: {err.decode().strip()[-200:]})"
                    )
                await asyncio.sleep(max(every - (time.monotonic() - t0), 0))

        def skipped() -> int:
            return sum(sum(s.skipped.values()) for s in daemon.metrics.pairs.pairs.values())

        await daemon.start()
        scraping = asyncio.create_task(scraper(scrape_every)) if scrape_every else None
        try:
            await asyncio.sleep(parse_duration(interval) + 0.5)
            runs0, lags0, skipped0, scrapes0 = runs, len(lags), skipped(), len(scrapes)
            starts0 = len(starts)
            kids = [
                c for c in psutil.Process().children() if "workers.child" in " ".join(c.cmdline())
            ]
            kids0 = sum(sum(c.cpu_times()[:2]) for c in kids)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            kids_cpu = sum(sum(c.cpu_times()[:2]) for c in kids) - kids0
            done = runs - runs0
            window = sorted(lags[lags0:])
            started = sorted(starts[starts0:])
            skips = skipped() - skipped0
            rss = psutil.Process().memory_info().rss
            pairs = len(daemon.metrics.pairs.pairs)
            measured = scrapes[scrapes0:] or scrapes[-1:]
        finally:
            if scraping is not None:
                scraping.cancel()
            await daemon.stop(grace=5)
        devnull.close()
    return {
        "journeys": n,
        "pairs": pairs,
        "runs": done,
        "runs_per_second": done / wall,
        "cpu_per_run": cpu / max(done, 1),
        "cpu_share": cpu / wall,
        "lag_p50": statistics.median(window) if window else float("nan"),
        "lag_p99": window[int(len(window) * 0.99) - 1] if window else float("nan"),
        "lag_max": window[-1] if window else float("nan"),
        "start_p99": started[int(len(started) * 0.99) - 1] if started else float("nan"),
        "workers": workers,
        "workers_cpu_per_run": kids_cpu / max(done, 1),
        "cores": (cpu + kids_cpu) / wall,
        "skipped": skips,
        "rss": rss,
        # None when not scraping: a NaN tells the smoke run a phase measured nothing.
        "scrape_seconds": max((t for t, _, _ in measured), default=float("nan"))
        if scrape_every
        else None,
        "scrape_bytes": max((b for _, b, _ in measured), default=0),
        "scrape_gzip_bytes": max((z for _, _, z in measured), default=0),
        "scrapes": len(measured),
        "lags": window,
    }


async def sharded_run(
    url: str, n: int, shards: int, interval: str, seconds: float, scrape_every: float
) -> dict[str, Any]:
    """`shards` daemons, one process each, splitting the same `n` journeys with the
    `shard` setting (docs/deploy.md#sharding), each scraped on its own as Prometheus
    scrapes replicas; figures merged (lag percentiles over every run of every shard)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--shard-child",
            f"{i}/{shards}",
            url,
            str(n),
            interval,
            str(seconds),
            str(scrape_every),
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(shards)
    ]
    outs = [await p.communicate() for p in procs]
    parts = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
    window = sorted(lag for part in parts for lag in part["lags"])
    return {
        "shards": parts,
        "runs": sum(p["runs"] for p in parts),
        "runs_per_second": sum(p["runs_per_second"] for p in parts),
        "skipped": sum(p["skipped"] for p in parts),
        "lag_p50": statistics.median(window) if window else float("nan"),
        "lag_p99": window[int(len(window) * 0.99) - 1] if window else float("nan"),
        "lag_max": window[-1] if window else float("nan"),
    }


def shard_child(shard: str, url: str, n: str, interval: str, seconds: str, every: str) -> None:
    """One shard of `sharded_run`, in its own process: prints its figures as JSON."""
    result = asyncio.run(
        daemon_run(
            url,
            int(n),
            interval,
            float(seconds),
            scrape_every=float(every),
            top_toml=f'shard = "{shard}"\n',
        )
    )
    print(json.dumps(result))


BLACKBOX_CONFIG = """
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4}
"""


async def blackbox_run(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """blackbox_exporter probing `url`/healthz `rate` times a second for `seconds`:
    CPU of the exporter process per probe (this process only drives it)."""
    binary = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if binary is None:
        raise RuntimeError(
            "blackbox_exporter is not installed (apt-get install prometheus-blackbox-exporter)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "blackbox.yml"
        cfg.write_text(BLACKBOX_CONFIG)
        port = free_port()
        proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        probe = f"{base}/probe"
        params = {"module": "http_2xx", "target": f"{url}/healthz"}
        try:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                for _ in range(100):
                    try:
                        (await client.get(f"{base}/-/healthy")).raise_for_status()
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                failed = 0

                async def one() -> None:
                    nonlocal failed
                    try:
                        r = await client.get(probe, params=params)
                    except httpx.HTTPError:
                        failed += 1  # a loaded machine: count it, do not abort the bench
                        return
                    if "probe_success 1" not in r.text:
                        failed += 1

                for _ in range(20):  # warm-up
                    await one()
                ps = psutil.Process(proc.pid)
                t0 = ps.cpu_times()
                start = time.monotonic()
                tasks, sent = set(), 0
                while (now := time.monotonic() - start) < seconds:
                    while sent < now * rate:
                        task = asyncio.create_task(one())
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                        sent += 1
                    await asyncio.sleep(0.01)
                await asyncio.gather(*tasks)
                t1 = ps.cpu_times()
        finally:
            proc.terminate()
            proc.wait()
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    return {"probes": sent, "failed": failed, "cpu_per_probe": cpu / max(sent, 1)}


async def main(size: Size) -> dict[str, Any]:
    proc, url = start_target()
    try:
        runs = size.pick(2000, 300, 20)
        seconds = size.pick(15, 6, 1)
        # Raw, daemon and blackbox alternate, and each keeps its least disturbed (lowest)
        # round: on a shared machine a burst of load in one phase would otherwise
        # decide the ratio.
        raws, streams, cpus, anyios, bbs = [], [], [], [], []
        # Five rounds at full size: the per-round ratios (raw and daemon measured back to
        # back) are printed beside the best-of ratio, and their median is the figure a
        # slow drift of this shared VM's speed moves least.
        for _ in range(size.pick(5, 1, 1)):
            raws.append(await raw_floor(url, runs))
            streams.append(await raw_floor(url, runs, streams=True))
            cpus.append(await daemon_run(url, 100, "2s", seconds))
            # The same daemon on httpx's default network backend (anyio): what
            # runners/streams.py saves per run, measured side by side.
            on_anyio = {"transport_factory": httpx_default_transport}
            anyios.append(await daemon_run(url, 100, "2s", seconds, daemon_kwargs=on_anyio))
            bbs.append(await blackbox_run(url, cpus[-1]["runs_per_second"], seconds))
        raw, raw_streams = min(raws), min(streams)
        cpu = min(cpus, key=lambda c: float(c["cpu_per_run"]))
        cpu_anyio = min(anyios, key=lambda c: float(c["cpu_per_run"]))
        bb = min(bbs, key=lambda b: float(b["cpu_per_probe"]))
        # Smoke: a 1 s interval, so the warm-up (one interval) is short too.
        every = size.pick("10s", "10s", "1s")
        lag = await daemon_run(url, size.pick(1000, 1000, 100), every, size.pick(30, 10, 1))
        n, scale_seconds = size.pick(5000, 5000, 200), size.pick(45, 20, 2)
        scale = await daemon_run(url, n, every, scale_seconds, scrape_every=15)
        # One daemon on both cores: HTTP runs in 2 worker processes (docs/workers.md).
        scale_workers = await daemon_run(url, n, every, scale_seconds, scrape_every=15, workers=2)
        sharded = await sharded_run(url, n, 2, every, scale_seconds, 15)
        # Where one daemon stops keeping up: journeys every 10 s between the lag and
        # the scale points (full size only; docs/deploy.md's sizing comes from it).
        sweep = [
            await daemon_run(url, k, every, 30, scrape_every=15)
            for k in size.pick((2000, 3000, 4000), (), ())
        ]
    finally:
        proc.terminate()
        proc.wait()
    ratio = cpu["cpu_per_run"] / raw
    per_round = [c["cpu_per_run"] / r for r, c in zip(raws, cpus, strict=True)]
    ratio_median = statistics.median(per_round)
    ratio_streams = cpu["cpu_per_run"] / raw_streams
    bb_ratio = cpu["cpu_per_run"] / bb["cpu_per_probe"]
    print("== HTTP journeys: CPU per run (lower is better) ==")
    print(
        f"  raw httpx loop          {raw * 1000:7.3f} ms CPU/run  "
        f"({runs} runs, best of {len(raws)})"
    )
    print(
        f"  raw, asyncio streams    {raw_streams * 1000:7.3f} ms CPU/run  "
        f"(the same loop on the runner's network backend, best of {len(streams)})"
    )
    print(
        f"  daemon, 100 journeys    {cpu['cpu_per_run'] * 1000:7.3f} ms CPU/run  "
        f"({cpu['runs']} runs, {cpu['runs_per_second']:.0f} runs/s)"
    )
    print(
        f"  blackbox_exporter       {bb['cpu_per_probe'] * 1000:7.3f} ms CPU/probe "
        f"({bb['probes']} probes at the same rate, {bb['failed']} failed)"
    )
    print(
        f"  ratio daemon/raw        {ratio:7.2f}x   (target <= 1.30x)   "
        f"daemon/blackbox {bb_ratio:5.2f}x"
    )
    print(
        f"  ratio daemon/raw per round  {' '.join(f'{x:.2f}' for x in per_round)}   "
        f"median {ratio_median:4.2f}x"
    )
    print(f"  ratio daemon/raw on the same network backend {ratio_streams:5.2f}x")
    print(
        f"  daemon on anyio (httpx's default backend) {cpu_anyio['cpu_per_run'] * 1000:7.3f} "
        f"ms CPU/run: the asyncio-streams backend saves "
        f"{(cpu_anyio['cpu_per_run'] - cpu['cpu_per_run']) * 1000:.3f} ms per run"
    )
    print(f"== Scheduler start lag, {lag['journeys']} journeys every {every} ==")
    print(
        f"  p50 {lag['lag_p50'] * 1000:6.1f} ms   p99 {lag['lag_p99'] * 1000:6.1f} ms   "
        f"max {lag['lag_max'] * 1000:6.1f} ms   (target p99 <= 50 ms; {lag['runs']} runs, "
        f"{lag['runs_per_second']:.0f} runs/s, {lag['cpu_share'] * 100:.0f}% of one core)"
    )
    print(f"== Scale: {n} journeys every {every}, /metrics scraped every 15 s ==")
    print(
        f"  p50 {scale['lag_p50'] * 1000:6.1f} ms   p99 {scale['lag_p99'] * 1000:6.1f} ms   "
        f"max {scale['lag_max'] * 1000:6.1f} ms   (target p99 <= 50 ms)   "
        f"skipped {scale['skipped']} (target 0)"
    )
    print(
        f"  {scale['runs']} runs, {scale['runs_per_second']:.0f} runs/s, "
        f"{scale['cpu_share'] * 100:.0f}% of one core, RSS {scale['rss'] / 2**20:.0f} MB"
    )
    print(
        f"  /metrics {scale['scrape_bytes'] / 2**20:.1f} MB "
        f"({scale['scrape_gzip_bytes'] / 2**20:.2f} MB gzipped, as sent), scrape took "
        f"{scale['scrape_seconds'] * 1000:.0f} ms (rendered off the event loop; "
        f"slowest of {scale['scrapes']})"
    )
    w = scale_workers
    print(f"== Scale, one daemon with [scheduler] workers = 2: the same {n} journeys ==")
    print(
        f"  p50 {w['lag_p50'] * 1000:6.1f} ms   p99 {w['lag_p99'] * 1000:6.1f} ms   "
        f"max {w['lag_max'] * 1000:6.1f} ms   (target p99 <= 50 ms)   "
        f"skipped {w['skipped']} (target 0)"
    )
    print(
        f"  run start in the worker vs slot: p99 {w['start_p99'] * 1000:6.1f} ms "
        f"(scheduler lag + hand-off; in-process above: {scale['start_p99'] * 1000:.1f} ms)"
    )
    print(
        f"  {w['runs']} runs, {w['runs_per_second']:.0f} runs/s; CPU per run: daemon "
        f"{w['cpu_per_run'] * 1000:.3f} ms + workers {w['workers_cpu_per_run'] * 1000:.3f} ms; "
        f"{w['cores']:.2f} cores in all, daemon RSS {w['rss'] / 2**20:.0f} MB"
    )
    print(
        f"  /metrics {w['scrape_bytes'] / 2**20:.1f} MB, scrape took "
        f"{w['scrape_seconds'] * 1000:.0f} ms (slowest of {w['scrapes']})"
    )
    print(f"== Scale on 2 cores: the same {n} journeys, two sharded daemons (shard 0/2, 1/2) ==")
    print(
        f"  p50 {sharded['lag_p50'] * 1000:6.1f} ms   p99 {sharded['lag_p99'] * 1000:6.1f} ms   "
        f"max {sharded['lag_max'] * 1000:6.1f} ms   (target p99 <= 50 ms)   "
        f"skipped {sharded['skipped']} (target 0)"
    )
    for i, part in enumerate(sharded["shards"]):
        print(
            f"  shard {i}/2: {part['pairs']} journeys, {part['runs']} runs, "
            f"{part['runs_per_second']:.0f} runs/s, {part['cpu_share'] * 100:.0f}% of one core, "
            f"RSS {part['rss'] / 2**20:.0f} MB, /metrics {part['scrape_bytes'] / 2**20:.1f} MB "
            f"in {part['scrape_seconds'] * 1000:.0f} ms"
        )
    if sweep:
        print("== Sweep: journeys every 10 s on one daemon, /metrics scraped every 15 s ==")
    for point in sweep:
        print(
            f"  {point['journeys']:5d} journeys: p99 lag {point['lag_p99'] * 1000:7.1f} ms, "
            f"skipped {point['skipped']}, {point['runs_per_second']:.0f} runs/s, "
            f"{point['cpu_share'] * 100:.0f}% of one core, "
            f"{point['cpu_per_run'] * 1000:.2f} ms CPU/run"
        )
    return {
        "raw_cpu_per_run": raw,
        "raw_streams_cpu_per_run": raw_streams,
        "ratio_streams": ratio_streams,
        "daemon": cpu,
        "ratio": ratio,
        "ratio_median": ratio_median,
        "blackbox": bb,
        "lag": lag,
        "scale": scale,
        "scale_workers": scale_workers,
        "sharded": sharded,
        "daemon_anyio": cpu_anyio,
        "sweep": sweep,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--shard-child"]:
        sys.path.insert(0, str(ROOT / "src"))
        shard_child(*sys.argv[2:8])
        raise SystemExit(0)
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer runs, for a smoke check")
    asyncio.run(main(Size.of(quick=p.parse_args().quick)))
