"""Error rates of `synthmon compare` verdicts, measured side by side in one run.

Two demo shops on loopback (in this process) play baseline and candidate; each trial
is one full comparison (default 30 interleaved runs per side, the command's defaults:
alpha 0.05, max_failure_delta 0, max_latency_ratio 1.2) of an HTTP journey:

  identical      both healthy: the share of trials PROMOTED   (target >= 95 %)
  30% failing    the candidate fails 30 % of requests at random: share FLAGGED (>= 95 %)
  2x latency     the candidate's runs take about twice as long: share FLAGGED (>= 95 %)

Both shops answer every request after a 25 ms service time (chaos "slow"), like a real
backend: on bare loopback a run is mostly client overhead (~5-10 ms), so "twice as long"
would be a few milliseconds, drowned by the scheduling noise of a shared 2-core machine.

    python bench/compare.py [--trials 40] [--runs 30] [--quick]   (or: bench/run.py compare)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sizes import Size

from synthmon.cli.compare import interleaved_runs, thresholds_for
from synthmon.cli.verdict import compare
from synthmon.config.settings import load_settings
from synthmon.journeys.loader import load_journeys
from synthmon_demo import serve

JOURNEY = """
from synthmon import journey

@journey(interval="1m", timeout="5s")
async def browse(ctx):
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200
    async with ctx.step("search"):
        r = await ctx.http.get("/api/products", params={"q": "mug"})
        r.raise_for_status()
"""

SERVICE_TIME = 0.025
NO_FLAGS = SimpleNamespace(max_failure_delta=None, max_latency_ratio=None)


async def _chaos(url: str, **body: object) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{url}/_chaos", json=body)).raise_for_status()


async def main(size: Size, trials: int = 40, runs: int = 30) -> dict[str, float]:
    trials = size.pick(trials, 4, 1)
    runs = size.pick(runs, runs, 4)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "journeys").mkdir()
        (root / "journeys" / "catalog.py").write_text(textwrap.dedent(JOURNEY))
        async with serve() as blue, serve() as green:
            (root / "synthmon.toml").write_text(
                textwrap.dedent(f"""
                journeys_dir = "{root / "journeys"}"
                data_dir = "{root / "data"}"
                [targets.blue]
                base_url = "{blue.url}"
                [targets.green]
                base_url = "{green.url}"
                """)
            )
            settings = load_settings(root / "synthmon.toml")
            journeys = load_journeys(settings.journeys_dir).journeys
            targets = {t.name: t for t in settings.target_list()}
            thresholds = thresholds_for(journeys, settings.compare, NO_FLAGS)

            async def trial() -> bool:
                """True when the verdict is PROMOTE."""
                results = await interleaved_runs(
                    settings, journeys, targets["blue"], targets["green"], runs=runs,
                    out=io.StringIO(),
                )  # fmt: skip
                return compare(results, thresholds).promote

            service = {"mode": "slow", "delay": SERVICE_TIME}
            await _chaos(blue.url, **service)
            await _chaos(green.url, **service)
            # Calibrate "twice as long": the healthy run's median, split over 2 requests.
            calib = await interleaved_runs(
                settings,
                journeys,
                targets["blue"],
                targets["green"],
                runs=size.pick(10, 10, 2),
                out=io.StringIO(),
            )
            median = statistics.median(r.duration for r in calib["browse"][0])
            scenarios = {
                "identical": (service, True),
                "30% failing": ({"mode": "flaky", "rate": 0.3, "paths": ["/api/"]}, False),
                "2x latency": ({"mode": "slow", "delay": SERVICE_TIME + median / 2}, False),
            }
            print(
                f"compare verdicts: {trials} trials x {runs} interleaved runs per side "
                f"(healthy run median {median * 1000:.1f} ms)",
                flush=True,
            )
            rates: dict[str, float] = {}
            for name, (chaos, want_promote) in scenarios.items():
                await _chaos(green.url, **chaos)
                t0 = time.monotonic()
                right = 0
                for _ in range(trials):
                    right += (await trial()) == want_promote
                rates[name] = right / trials
                word = "promoted" if want_promote else "flagged"
                print(
                    f"  {name:<12} {word} in {right}/{trials} = {rates[name]:.0%} "
                    f"(target >= 95 %)  [{time.monotonic() - t0:.0f} s]",
                    flush=True,
                )
            await _chaos(green.url, mode="ok")
    return rates


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    asyncio.run(main(Size.of(quick=a.quick), a.trials, a.runs))
