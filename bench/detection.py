"""Time to detect an outage, and false alerts on a flaky target: synthmon vs
Prometheus + blackbox_exporter, both posting to the same real Alertmanager.

Everything runs on loopback as child processes: the demo shop, synthmon (`synthmon
run`), Prometheus, blackbox_exporter and Alertmanager. Measured at intervals of 10 s,
30 s, 1 min and 5 min; each is compressed to COMPRESSED (2 s) on both sides with the
same ratios (30 s -> 2 s is x1/15, as this benchmark always did; 5 min -> 2 s x1/150):

  synthmon:   critical defaults (2 consecutive failed runs, 1 retry and 1 re-check,
              retry_delay = a tenth of the interval, at most 5 s), Alertmanager
              re-send 60 s
  Prometheus: blackbox probe every interval, rule evaluation every interval,
              `probe_success == 0` with `for: <interval>` (2 consecutive failures)

(a) Detection: at a random moment the shop is switched to `down`; the time until each
    side's alert shows in Alertmanager's API (polled every 50 ms) is recorded; the
    shop is switched back and both alerts must resolve before the next trial.
(b) False alerts: the shop fails 5 % of requests at random ("flaky" chaos mode);
    COPIES journeys / probe targets run until each side made >= 500 attempts; every
    alert that reaches Alertmanager is a false alert.

    python bench/detection.py [--trials 20] [--quick] [--intervals 10 30 60 300]
    (or: python bench/run.py detection)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from sizes import Size

from synthmon.alerting.policy import auto_retry_delay

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
INTERVALS = (10.0, 30.0, 60.0, 300.0)
COMPRESSED = 2.0  # seconds: every interval runs compressed to this
SYNTHMON_ALERT = "SyntheticJourneyFailed"
PROMETHEUS_ALERT = "BlackboxProbeFailed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(f"missing {names[0]} (make system-deps installs it)")


class Proc:
    """A child process with a log file; `ready` is an HTTP URL answering 200."""

    def __init__(self, name: str, args: list[str], workdir: Path, ready: str) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.proc = subprocess.Popen(
            args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
        self.ready = ready

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.ready, timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"{self.name} not ready after {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    """Shop + Alertmanager (kept for the whole bench) and the two monitoring pipelines
    (started per phase with that phase's targets)."""

    def __init__(self, workdir: Path, real_interval: float) -> None:
        self.dir = workdir
        self.real_interval = real_interval
        self.scale = COMPRESSED / real_interval
        self.interval = COMPRESSED
        self.procs: list[Proc] = []
        self.shop_port = free_port()
        self.shop = f"http://127.0.0.1:{self.shop_port}"
        self.am_port = free_port()
        self.am = f"http://127.0.0.1:{self.am_port}"

    def start_base(self) -> None:
        shop = Proc(
            "shop",
            [sys.executable, "-m", "synthmon_demo", "--port", str(self.shop_port)],
            self.dir,
            f"{self.shop}/healthz",
        )
        (self.dir / "am.yml").write_text(
            "route: {receiver: none, group_wait: 0s}\nreceivers: [{name: none}]\n"
        )
        am = Proc(
            "alertmanager",
            [
                binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={self.dir / 'am.yml'}",
                f"--storage.path={self.dir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.am_port}",
                "--cluster.listen-address=",
            ],
            self.dir,
            f"{self.am}/-/ready",
        )
        self.procs += [shop, am]
        shop.wait_ready()
        am.wait_ready()

    def at(self, real_interval: float) -> None:
        """Measure at this (uncompressed) interval from now on."""
        self.real_interval = real_interval
        self.scale = COMPRESSED / real_interval

    def start_pipelines(self, phase: str, paths: list[str]) -> list[Proc]:
        phase = f"{phase}{self.real_interval:g}"
        d = self.dir / phase
        d.mkdir()
        i = self.interval
        # -- synthmon --
        jdir = d / "journeys"
        jdir.mkdir()
        for n, path in enumerate(paths):
            (jdir / f"j{n}.py").write_text(
                textwrap.dedent(f"""
                from synthmon import Context, journey

                @journey(name="{phase}{n}", severity="critical", interval="{i:g}s",
                         timeout="{min(i / 2, 10):g}s")
                async def j(ctx: Context) -> None:
                    async with ctx.step("home"):
                        r = await ctx.http.get("{path}")
                        assert r.status_code == 200, f"answered {{r.status_code}}"
                """)
            )
        sm_port = free_port()
        s = self.scale
        # The default, written out: it follows the real interval, not the compressed one.
        retry_delay = auto_retry_delay(self.real_interval) * s
        (d / "synthmon.toml").write_text(
            textwrap.dedent(f"""
            journeys_dir = "journeys"
            data_dir = "data"
            [server]
            listen = "127.0.0.1:{sm_port}"
            [logging]
            format = "json"
            level = "warning"
            [targets.shop]
            base_url = "{self.shop}"
            [alerting]
            resend_interval = "{60 * s:g}s"
            ends_at_min_interval = "{60 * s:g}s"
            resolve_resend_for = "{300 * s:g}s"
            retry_base_delay = "{1 * s:g}s"
            [alerting.alertmanager]
            urls = ["{self.am}"]
            [alerting.severity.critical]
            retry_delay = "{retry_delay:.4f}s"
            """)
        )
        synthmon = Proc(
            f"synthmon-{phase}",
            [sys.executable, "-m", "synthmon", "run", "--config", str(d / "synthmon.toml")],
            d,
            f"http://127.0.0.1:{sm_port}/healthz",
        )
        # -- blackbox_exporter + Prometheus --
        bb_port, prom_port = free_port(), free_port()
        (d / "blackbox.yml").write_text(
            textwrap.dedent(f"""
            modules:
              http_2xx:
                prober: http
                timeout: {min(i / 2, 10):g}s
                http: {{preferred_ip_protocol: ip4}}
            """)
        )
        targets = json.dumps([f"{self.shop}{p}" for p in paths])
        (d / "rules.yml").write_text(
            textwrap.dedent(f"""
            groups:
              - name: bench
                rules:
                  - alert: {PROMETHEUS_ALERT}
                    expr: probe_success{{job="blackbox"}} == 0
                    for: {i:g}s
                    labels: {{severity: critical}}
            """)
        )
        (d / "prometheus.yml").write_text(
            textwrap.dedent(f"""
            global:
              scrape_interval: {i:g}s
              scrape_timeout: {min(i / 2, 10):g}s
              evaluation_interval: {i:g}s
            rule_files: [rules.yml]
            alerting:
              alertmanagers:
                - static_configs: [{{targets: ["127.0.0.1:{self.am_port}"]}}]
            scrape_configs:
              - job_name: blackbox
                metrics_path: /probe
                params: {{module: [http_2xx]}}
                static_configs: [{{targets: {targets}}}]
                relabel_configs:
                  - {{source_labels: [__address__], target_label: __param_target}}
                  - {{source_labels: [__param_target], target_label: instance}}
                  - {{target_label: __address__, replacement: "127.0.0.1:{bb_port}"}}
            """)
        )
        blackbox = Proc(
            f"blackbox-{phase}",
            [
                binary("prometheus-blackbox-exporter", "blackbox_exporter"),
                f"--config.file={d / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{bb_port}",
            ],
            d,
            f"http://127.0.0.1:{bb_port}/-/healthy",
        )
        prometheus = Proc(
            f"prometheus-{phase}",
            [
                binary("prometheus"),
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            d,
            f"http://127.0.0.1:{prom_port}/-/ready",
        )
        procs = [synthmon, blackbox, prometheus]
        self.procs += procs
        for p in procs:
            p.wait_ready()
        return procs

    def stop(self, procs: list[Proc] | None = None) -> None:
        for p in reversed(procs if procs is not None else self.procs):
            p.stop()

    async def chaos(self, client: httpx.AsyncClient, mode: str, **extra: Any) -> None:
        r = await client.post(f"{self.shop}/_chaos", json={"mode": mode, **extra})
        r.raise_for_status()

    async def alerts(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        r = await client.get(f"{self.am}/api/v2/alerts")
        r.raise_for_status()
        return [
            a
            for a in r.json()
            if a["labels"].get("alertname") in (SYNTHMON_ALERT, PROMETHEUS_ALERT)
        ]


def side(alert: dict[str, Any]) -> str:
    return "synthmon" if alert["labels"]["alertname"] == SYNTHMON_ALERT else "prometheus"


async def detection(stack: Stack, trials: int, rng: random.Random) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"synthmon": [], "prometheus": []}
    procs = stack.start_pipelines("detect", ["/"])
    i = stack.interval
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await asyncio.sleep(2 * i)  # both sides have a passing baseline
            for trial in range(trials):
                await asyncio.sleep(rng.uniform(0, i))  # a random moment in the cycle
                await stack.chaos(client, "down")
                flipped = time.monotonic()
                seen: dict[str, float] = {}
                deadline = flipped + 10 * i
                while len(seen) < 2 and time.monotonic() < deadline:
                    for a in await stack.alerts(client):
                        seen.setdefault(side(a), time.monotonic() - flipped)
                    await asyncio.sleep(0.05)
                for name in times:
                    times[name].append(seen.get(name, float("nan")))
                await stack.chaos(client, "ok")
                print(
                    f"  trial {trial + 1:2d}: synthmon {seen.get('synthmon', float('nan')):5.2f}s"
                    f"  prometheus {seen.get('prometheus', float('nan')):5.2f}s",
                    flush=True,
                )
                deadline = time.monotonic() + 10 * i
                while await stack.alerts(client) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                await asyncio.sleep(i)  # both sides see passes before the next outage
    finally:
        stack.stop(procs)
    return times


async def false_alerts(stack: Stack, copies: int, attempts: int, rate: float) -> dict[str, Any]:
    procs = stack.start_pipelines("flaky", [f"/?copy={n}" for n in range(copies)])
    i = stack.interval
    fired: dict[str, set[tuple[str, str]]] = {"synthmon": set(), "prometheus": set()}
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await asyncio.sleep(i)
            await stack.chaos(client, "flaky", rate=rate)
            started = time.monotonic()
            duration = attempts / copies * i
            while time.monotonic() - started < duration:
                for a in await stack.alerts(client):
                    fired[side(a)].add((json.dumps(a["labels"], sort_keys=True), a["startsAt"]))
                await asyncio.sleep(0.1)
            await stack.chaos(client, "ok")
            runs = await _synthmon_runs(procs[0])
    finally:
        stack.stop(procs)
    return {
        "duration_seconds": duration,
        "synthmon_runs": runs,
        "prometheus_probes": int(duration / i) * copies,
        "synthmon_false_alerts": len(fired["synthmon"]),
        "prometheus_false_alerts": len(fired["prometheus"]),
    }


async def _synthmon_runs(proc: Proc) -> int:
    """Scheduled (final) runs: every run minus retried attempts."""
    url = proc.ready.replace("/healthz", "/metrics")
    async with httpx.AsyncClient() as client:
        text = (await client.get(url)).text
    total = retries = 0.0
    for line in text.splitlines():
        if line.startswith("synthmon_journey_runs_total{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("synthmon_journey_retries_total{"):
            retries += float(line.rsplit(" ", 1)[1])
    return int(total - retries)


def summary(values: list[float]) -> dict[str, float]:
    ok = sorted(v for v in values if v == v)
    if not ok:
        return {"median": float("nan"), "p95": float("nan"), "missed": len(values)}
    p95 = ok[min(len(ok) - 1, max(0, round(0.95 * len(ok)) - 1))]
    return {"median": statistics.median(ok), "p95": p95, "missed": len(values) - len(ok)}


async def one_interval(
    stack: Stack, trials: int, copies: int, attempts: int, rng: random.Random
) -> dict[str, Any]:
    """Both phases at the stack's current interval."""
    real, scale = stack.real_interval, stack.scale
    print(
        f"== {real:g} s interval (compressed x{scale:.3g} to {stack.interval:g} s): "
        f"time to detect, {trials} trials ==",
        flush=True,
    )
    times = await detection(stack, trials, rng)
    print(
        f"== {real:g} s: false alerts, 5 % failing requests, {copies} journeys/probes, "
        f">= {attempts} attempts per side ==",
        flush=True,
    )
    flaky = await false_alerts(stack, copies, attempts, 0.05)
    sm, pr = summary(times["synthmon"]), summary(times["prometheus"])
    ratio = sm["median"] / pr["median"]
    to_real = 1 / scale
    print(f"== {real:g} s results (seconds; in brackets: uncompressed, x{to_real:g}) ==")
    for name, s in (("synthmon", sm), ("prometheus+blackbox", pr)):
        print(
            f"  {name:20s} median {s['median']:5.2f} [{s['median'] * to_real:6.1f}]  "
            f"p95 {s['p95']:5.2f} [{s['p95'] * to_real:6.1f}]  missed {s['missed']}"
        )
    print(f"  ratio synthmon/prometheus median {ratio:.2f}  (target <= 0.50)")
    print(
        f"  false alerts: synthmon {flaky['synthmon_false_alerts']} in "
        f"{flaky['synthmon_runs']} runs, prometheus {flaky['prometheus_false_alerts']} in "
        f"~{flaky['prometheus_probes']} probes (target: synthmon <= prometheus)",
        flush=True,
    )
    return {
        "interval": real,
        "scale": scale,
        "trials": trials,
        "synthmon": sm,
        "prometheus": pr,
        "ratio": ratio,
        "false_alerts": flaky,
        "raw": times,
    }


async def main(
    size: Size, trials: int = 20, intervals: tuple[float, ...] = INTERVALS
) -> list[dict[str, Any]]:
    """Both phases at every interval; `bench/run.py` calls `main(size)`."""
    rng = random.Random()
    copies, attempts = size.pick((10, 500), (5, 100), (2, 4))
    trials = size.pick(trials, 3, 1)
    # Smoke: one interval (every interval takes the same path, compressed alike).
    intervals = size.pick(intervals, intervals, intervals[:1])
    results = []
    with tempfile.TemporaryDirectory(prefix="synthmon-bench-") as tmp:
        stack = Stack(Path(tmp), intervals[0])
        try:
            stack.start_base()
            for real in intervals:
                stack.at(real)
                results.append(await one_interval(stack, trials, copies, attempts, rng))
        finally:
            stack.stop()
    print("== Summary (uncompressed seconds) ==")
    print("  interval  synthmon median  prometheus median  ratio  false alerts synthmon/prometheus")
    for r in results:
        real = 1 / r["scale"]
        f = r["false_alerts"]
        print(
            f"  {r['interval']:>6g} s  {r['synthmon']['median'] * real:13.1f} s  "
            f"{r['prometheus']['median'] * real:15.1f} s  {r['ratio']:5.2f}  "
            f"{f['synthmon_false_alerts']}/{f['prometheus_false_alerts']}"
        )
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="3 trials, 100 flaky attempts")
    p.add_argument(
        "--intervals", type=float, nargs="+", default=list(INTERVALS), help="seconds, uncompressed"
    )
    args = p.parse_args()
    asyncio.run(main(Size.of(quick=args.quick), args.trials, tuple(args.intervals)))
