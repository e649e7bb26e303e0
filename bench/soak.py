"""`make soak`: the daemon as deployed (`synthmon run`) for a long time, with faults
injected on a schedule, checking that nothing is lost and nothing grows.

    python bench/soak.py --minutes 60 --http 40 --browser 2

Runs, all on loopback: the demo shop, the fault server (tests/faults/faultserver.py),
a webhook receiver (this process) and `synthmon run` with

- N HTTP journeys (every 5 s): most healthy, a quarter "victims" on /api/products,
  where the shop's chaos switch injects errors for half of every fault period;
- one journey against the fault server's reset-mid-body row (fails throughout);
- M browser journeys (every 20 s) on the shop's home page (real Chromium).

Prints per journey the runs expected against those recorded + counted as skipped
(unaccounted must be 0), the scheduler's p99 start lag, the daemon's RSS, open file
descriptors and Chromium processes at start, middle and end, and the alerts expected
(one trigger and one resolve per victim per episode, one trigger for the reset row)
against those delivered. Exits 1 when a run or an alert is unaccounted for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sizes import Size  # noqa: E402
from tests.loopback import WebhookReceiver, free_port  # noqa: E402

HTTP_INTERVAL = 5.0
BROWSER_INTERVAL = 20.0

JOURNEYS = """
from synthmon import Context, journey


def http(i: int, victim: bool):
    path = "/api/products" if victim else "/"
    name = f"{'victim' if victim else 'http'}{i:03d}"

    @journey(name=name, severity="critical", interval="{http}s", timeout="2s")
    async def j(ctx: Context) -> None:
        async with ctx.step("get"):
            (await ctx.http.get(path)).raise_for_status()

    return j


def browser(i: int):
    @journey(name=f"browser{i:02d}", kind="browser", severity="warning", interval="{browser}s",
             timeout="{browser_timeout}s")
    async def j(ctx: Context) -> None:
        async with ctx.step("home"):
            response = await ctx.page.goto("/")
            assert response is not None and response.ok

    return j


@journey(name="reset_row", severity="critical", interval="{http}s", timeout="2s")
async def reset_row(ctx: Context) -> None:
    async with ctx.step("get"):
        await ctx.http.get("{faults}/reset")

"""


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def per_journey(m: dict[Any, float], name: str) -> Counter[str]:
    c: Counter[str] = Counter()
    for (metric, labels), value in m.items():
        if metric == name:
            c[dict(labels)["journey"]] += value
    return c


def lag_p99(before: dict[Any, float], after: dict[Any, float]) -> float:
    buckets = sorted(
        (float(dict(labels)["le"]), value - before.get((metric, labels), 0.0))
        for (metric, labels), value in after.items()
        if metric == "synthmon_scheduler_lag_seconds_bucket"
    )
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return le
    return float("nan")


def footprint(pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    kids = proc.children(recursive=True)
    chromium = [k for k in kids if "chrom" in k.name().lower()]
    return {
        "rss_mb": proc.memory_info().rss / 2**20,
        "fds": proc.num_fds(),
        "chromium_procs": len(chromium),
        "chromium_rss_mb": sum(k.memory_info().rss for k in chromium) / 2**20,
    }


def chaos(shop: str, mode: str) -> None:
    httpx.post(f"{shop}/_chaos", json={"mode": mode, "paths": ["/api/products"]}, timeout=10)


def start(cmd: list[str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, text=True, **kw)


def soak(
    minutes: float,
    n_http: int,
    n_browser: int,
    period: float | None,
    intervals: tuple[float, float] = (HTTP_INTERVAL, BROWSER_INTERVAL),
) -> dict[str, Any]:
    """The soak; its figures, with "exit": 0 when every run and alert is accounted
    for, 1 when not, 2 when the daemon did not start. `intervals`: HTTP, browser."""
    http_interval, browser_interval = intervals
    window = minutes * 60
    # Fault episodes: `period` long, errors for its first half; the last one ends by 80 %.
    period = period or max(40.0, window / 6)
    n_victims = max(1, n_http // 4)
    tmp = Path(tempfile.mkdtemp(prefix="synthmon-soak-"))
    shop_port, port = free_port(), free_port()
    shop = f"http://127.0.0.1:{shop_port}"
    procs: list[subprocess.Popen[str]] = []
    rec = WebhookReceiver()
    try:
        procs.append(
            start(
                [sys.executable, "-m", "synthmon_demo", "--port", str(shop_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        faults_proc = start(
            [sys.executable, str(ROOT / "tests/faults/faultserver.py")],
            stdout=subprocess.PIPE,
        )
        procs.append(faults_proc)
        assert faults_proc.stdout is not None
        faults_url = dict(p.split("=", 1) for p in faults_proc.stdout.readline().split())["url"]
        jdir = tmp / "journeys"
        jdir.mkdir()
        names = [f"http({i}, {i < n_victims})" for i in range(n_http)]
        names += [f"browser({i})" for i in range(n_browser)]
        body = (
            JOURNEYS.replace("{faults}", faults_url)
            .replace("{http}", f"{http_interval:g}")
            .replace("{browser}", f"{browser_interval:g}")
            .replace("{browser_timeout}", f"{min(15.0, browser_interval):g}")
        )
        body += "\n".join(f"j{k} = {call}" for k, call in enumerate(names)) + "\n"
        (jdir / "soak.py").write_text(body)
        cfg = tmp / "synthmon.toml"
        cfg.write_text(
            f'journeys_dir = "{jdir}"\ndata_dir = "{tmp / "data"}"\n'
            f'[server]\nlisten = "127.0.0.1:{port}"\n[logging]\nformat = "json"\n'
            f"[browser]\nno_sandbox = {'true' if os.geteuid() == 0 else 'false'}\n"
            '[alerting]\nretry_base_delay = "0.2s"\nretry_max_delay = "2s"\n'
            '[alerting.webhook]\nurl = { env = "SOAK_WEBHOOK_URL" }\n'
            '[alerting.routes]\ncritical = ["webhook"]\nwarning = []\n'
            f'[targets.shop]\nbase_url = "{shop}"\nallowed_hosts = ["127.0.0.1"]\n'
            "max_concurrency = 50\n"
        )
        log = (tmp / "daemon.log").open("w")
        daemon = start(
            [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SOAK_WEBHOOK_URL": rec.url},
        )
        procs.append(daemon)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or daemon.poll() is not None:
                print((tmp / "daemon.log").read_text()[-3000:])
                return {"exit": 2}
            time.sleep(0.2)
        # One browser interval of warm-up: every pair has started once.
        time.sleep(browser_interval + 2)
        samples = {"start": footprint(daemon.pid)}
        m0, t0 = metrics(port), time.monotonic()
        episodes = 0
        next_fault = t0 + period / 4
        middle_taken = False
        print(
            f"soak: {minutes:g} min, {n_http} HTTP ({n_victims} victims) + {n_browser} "
            f"browser journeys, fault period {period:.0f} s, logs in {tmp}",
            flush=True,
        )
        while (now := time.monotonic()) < t0 + window:
            # Four HTTP intervals after the episode for the resolves to arrive.
            if now >= next_fault and now + period / 2 + 4 * http_interval <= t0 + window:
                chaos(shop, "error")
                episodes += 1
                time.sleep(period / 2)
                chaos(shop, "ok")
                next_fault = time.monotonic() + period / 2
            if not middle_taken and now >= t0 + window / 2:
                samples["middle"] = footprint(daemon.pid)
                middle_taken = True
            time.sleep(0.5)
        m1, elapsed = metrics(port), time.monotonic() - t0
        samples["end"] = footprint(daemon.pid)
        samples.setdefault("middle", samples["end"])
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
        figures = report(
            m0, m1, elapsed, samples, rec.alerts, episodes, n_victims, daemon.returncode, intervals
        )
        if figures["exit"] == 0:
            # Everything accounted for: nothing to look at (CI's smoke run would
            # otherwise leave a folder behind on every run). Kept when something is off.
            shutil.rmtree(tmp, ignore_errors=True)
            print(f"  all accounted for: {tmp} removed")
        return figures
    finally:
        rec.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def report(
    m0: dict[Any, float],
    m1: dict[Any, float],
    elapsed: float,
    samples: dict[str, dict[str, float]],
    alerts: list[dict[str, Any]],
    episodes: int,
    n_victims: int,
    returncode: int | None,
    intervals: tuple[float, float],
) -> dict[str, Any]:
    runs = per_journey(m1, "synthmon_journey_runs_total")
    runs.subtract(per_journey(m0, "synthmon_journey_runs_total"))
    skipped = per_journey(m1, "synthmon_journey_skipped_runs_total")
    skipped.subtract(per_journey(m0, "synthmon_journey_skipped_runs_total"))
    unaccounted = 0
    worst = ("", 0.0)
    for journey in sorted(runs):
        interval = intervals[1] if journey.startswith("browser") else intervals[0]
        expected = elapsed / interval
        # A pair's first slot in the window may fall either side of its edges: +-1.
        missing = expected - runs[journey] - skipped[journey] - 1
        if missing > 0.5:
            unaccounted += 1
            print(
                f"  {journey}: expected {expected:.1f} runs, recorded {runs[journey]:.0f} "
                f"+ skipped {skipped[journey]:.0f}"
            )
        worst = max(worst, (journey, missing), key=lambda w: w[1])
    print(
        f"== runs: {len(runs)} journeys, {sum(runs.values()):.0f} runs recorded, "
        f"{sum(skipped.values()):.0f} counted as skipped, {unaccounted} journeys with "
        f"unaccounted runs"
    )
    print(f"== scheduler start lag p99 <= {lag_p99(m0, m1) * 1000:.0f} ms (histogram bucket)")
    print("== footprint        RSS MB   FDs   Chromium procs (RSS MB)")
    for when in ("start", "middle", "end"):
        s = samples[when]
        print(
            f"   {when:<8}      {s['rss_mb']:7.1f} {s['fds']:5.0f}   "
            f"{s['chromium_procs']:3.0f} ({s['chromium_rss_mb']:.0f})"
        )
    failed = [a for a in alerts if a["alertname"] == "SyntheticJourneyFailed"]
    # Reminders (every repeat_interval, 1 h, while an alert fires) are not episodes.
    reminders = Counter(a["journey"] for a in failed if a["event"] == "reminder")
    got = Counter((a["journey"], a["event"]) for a in failed if a["event"] != "reminder")
    expected_alerts = Counter({("reset_row", "trigger"): 1})
    for i in range(n_victims):
        expected_alerts[(f"victim{i:03d}", "trigger")] = episodes
        expected_alerts[(f"victim{i:03d}", "resolve")] = episodes
    lost = expected_alerts - got
    invented = got - expected_alerts
    print(
        f"== alerts: {episodes} fault episodes; expected {sum(expected_alerts.values())}, "
        f"delivered {sum(got.values())}, lost {sum(lost.values())}, "
        f"invented {sum(invented.values())}"
    )
    for key, n in (lost + invented).items():
        print(f"   {'lost' if key in lost else 'invented'}: {key} x{n}")
    if reminders:
        print(f"   reminders (repeat_interval) while firing: {dict(reminders)}")
    print(f"== daemon exit status after SIGTERM: {returncode}")
    ok = not unaccounted and not lost and not invented and returncode == 0
    return {
        "exit": 0 if ok else 1,
        "journeys": len(runs),
        "runs": sum(runs.values()),
        "skipped": sum(skipped.values()),
        "unaccounted_journeys": unaccounted,
        "episodes": episodes,
        "alerts_expected": sum(expected_alerts.values()),
        "alerts_delivered": sum(got.values()),
        "alerts_lost": sum(lost.values()),
        "alerts_invented": sum(invented.values()),
        "daemon_exit": returncode,
        "footprint": samples,
    }


async def main(size: Size) -> dict[str, Any]:
    """`bench/run.py soak`: a short soak so the script cannot rot (2 min; 1 with --quick).

    Smoke: 24 s, 4 HTTP journeys every 2 s and one browser journey every 6 s, one fault
    episode of 8 s. So short a soak on a shared machine says nothing about lost runs or
    alerts, so there it fails only when the daemon did not start or stop cleanly, or
    recorded no run or delivered no alert: the paths did not run."""
    figures = await asyncio.to_thread(
        soak,
        size.pick(2.0, 1.0, 0.4),
        size.pick(20, 20, 4),
        1,
        size.pick(None, None, 16.0),
        size.pick((HTTP_INTERVAL, BROWSER_INTERVAL), (HTTP_INTERVAL, BROWSER_INTERVAL), (2.0, 6.0)),
    )
    if figures["exit"] == 2:
        raise RuntimeError("soak: the daemon did not start (its log is printed above)")
    if size.smoke:
        if not figures["runs"] or not figures["alerts_delivered"] or figures["daemon_exit"] != 0:
            raise RuntimeError(f"soak: a path did not run: {figures}")
    elif figures["exit"]:
        raise RuntimeError(f"soak found unaccounted runs or alerts (exit {figures['exit']})")
    return figures


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--http", type=int, default=40, help="HTTP journeys (a quarter are victims)")
    p.add_argument("--browser", type=int, default=2, help="browser journeys")
    p.add_argument("--period", type=float, default=None, help="fault period, seconds")
    a = p.parse_args()
    raise SystemExit(soak(a.minutes, a.http, a.browser, a.period)["exit"])
