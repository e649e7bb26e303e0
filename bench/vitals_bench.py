"""What Web Vitals cost a browser run: the pooled runner with `[browser] web_vitals` on
and off, the same two-page journey (bench/browser.py's), interleaved in batches so
load drifts hit both alike. CPU is this process plus its descendants (Chromium and the
Playwright driver; the demo shop excluded), per run.

    python bench/vitals_bench.py            # 60 runs per mode
    python bench/vitals_bench.py --quick    # 10 runs per mode
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sizes import Size

from browser import _pool, _start_shop, browse
from synthmon.model import RunRequest, Status, Target
from synthmon.runners.base import new_run_id
from synthmon.runners.browser.artifacts import ArtifactStore
from synthmon.runners.browser.runner import BrowserRunner
from synthmon.safety.ratelimit import RateLimits

BATCH = 5


def _cpu(exclude: int) -> float:
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        if child.pid == exclude:
            continue
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return total


async def _batch(runner: BrowserRunner, target: Target, n: int, shop: int) -> tuple[float, float]:
    cpu0, t0 = _cpu(shop), time.perf_counter()
    for _ in range(n):
        result = await runner.run(RunRequest(browse, target, run_id=new_run_id()))
        assert result.status is Status.SUCCESS, result.error_message
    return _cpu(shop) - cpu0, time.perf_counter() - t0


async def bench(runs: int, batch: int = BATCH) -> dict[str, Any]:
    shop, url = _start_shop()
    target = Target("bench", url, frozenset({"127.0.0.1"}))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runners = {
                mode: BrowserRunner(
                    _pool(),
                    pace=RateLimits(()).acquire,
                    store=ArtifactStore(Path(tmp)),
                    ua_suffix="synthmon/bench",
                    web_vitals=mode == "on",
                )
                for mode in ("on", "off")
            }
            cpu: dict[str, list[float]] = {"on": [], "off": []}
            wall: dict[str, list[float]] = {"on": [], "off": []}
            try:
                for runner in runners.values():  # launch both browsers before measuring
                    await _batch(runner, target, 1, shop.pid)
                for _ in range(max(runs // batch, 1)):
                    for mode, runner in runners.items():
                        c, w = await _batch(runner, target, batch, shop.pid)
                        cpu[mode].append(c / batch)
                        wall[mode].append(w / batch)
            finally:
                for runner in runners.values():
                    await runner.aclose()
    finally:
        shop.kill()
        shop.wait()
    out: dict[str, Any] = {"runs_per_mode": max(runs // batch, 1) * batch, "batch": batch}
    for mode in ("on", "off"):
        out[mode] = {
            "cpu_ms_per_run": round(statistics.median(cpu[mode]) * 1000, 1),
            "wall_ms_per_run": round(statistics.median(wall[mode]) * 1000, 1),
        }
    out["cpu_ratio"] = round(out["on"]["cpu_ms_per_run"] / out["off"]["cpu_ms_per_run"], 3)
    out["wall_ratio"] = round(out["on"]["wall_ms_per_run"] / out["off"]["wall_ms_per_run"], 3)
    return out


async def main(size: Size) -> dict[str, Any]:
    out = await bench(size.pick(60, 10, 1), batch=size.pick(BATCH, BATCH, 1))
    on, off = out["on"], out["off"]
    print(
        f"== web vitals (concurrency 1, {out['runs_per_mode']} runs per mode, median of "
        f"batches of {out['batch']}): CPU {on['cpu_ms_per_run']} vs {off['cpu_ms_per_run']} ms "
        f"per run ({out['cpu_ratio']}x), wall {on['wall_ms_per_run']} vs "
        f"{off['wall_ms_per_run']} ms ({out['wall_ratio']}x)"
    )
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 runs per mode")
    asyncio.run(main(Size.of(quick=p.parse_args().quick)))
