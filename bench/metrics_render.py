"""/metrics render (issue 9, "Scale"): CPU and size of one scrape's body at 1,000 and
5,000 one-step HTTP journeys on one target, rendered the old way (prometheus_client's
`generate_latest` over the whole registry, every per-pair sample formatted in Python)
and the way the status server renders it now (`web.server.render`: generate_latest for
the rest of the registry, the per-pair families written as text by
`sinks/pairtext.py`, the history's per-pair families by sinks/history/families.py).

The store is filled as the daemon fills it: `Metrics.set_catalog` with real journeys,
then runs recorded through the metrics sink (a mix of passes and failures) and an
alert state per pair, with `location` set; the history's per-pair families (slots by
outcome, incidents, availability/MTTR/MTBF for 3 windows) as its writer publishes them,
with the figures of a pair that had incidents for some pairs (unknown for the others,
so without series, as in the daemon). The render thread holds the GIL while it
formats, so its CPU time is how long every scrape holds up the event loop that
starts runs. Each figure is the median of several renders after one warm-up render
(the first new render also builds the per-pair label cache: shown apart).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sizes import Size

from synthmon import Context, journey
from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Status, StepResult
from synthmon.sinks.history.metrics import HistoryMetrics
from synthmon.sinks.history.records import SlotOutcome
from synthmon.sinks.history.stats import WINDOWS, WindowStats
from synthmon.sinks.metrics import Metrics
from synthmon.web.server import TextSource, WithoutCreated, render


def build(pairs: int, *, step_histograms: bool) -> tuple[WithoutCreated, list[TextSource]]:
    """The registry and the text sources of a daemon with `pairs` journeys on one target,
    wired as daemon.py wires them."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, location="eu-west-1", step_histograms=step_histograms)
    health = {"ok": True, "queued": 0, "size_bytes": 123_456_789}
    history = HistoryMetrics(registry, health=lambda: health, location="eu-west-1")

    async def body(ctx: Context) -> None:
        return None

    journeys: list[Journey] = [
        journey(name=f"journey_{i:05d}", severity="critical", interval="10s")(body)
        for i in range(pairs)
    ]
    metrics.set_catalog((j, "production") for j in journeys)
    now = time.time()
    for n in range(3):
        for i, j in enumerate(journeys):
            ok = (i + n) % 7 != 0
            status = Status.SUCCESS if ok else Status.FAILURE
            metrics.pairs.record(
                RunResult(
                    journey=j.name,
                    target="production",
                    run_id=f"{i}-{n}",
                    trace_id=f"{i}-{n}",
                    status=status,
                    started_at=now + n * 10,
                    duration=0.05 + (i % 40) / 100,
                    steps=(StepResult("home", status, 0.04 + (i % 40) / 100),),
                )
            )
    for j in journeys:
        metrics.pairs.set_alert_state("SyntheticJourneyFailing", j.name, "production", "ok")
    for i, j in enumerate(journeys):
        history.pairs.add(j.name, "production")
        for n in range(3):
            outcome = SlotOutcome.PASSED if (i + n) % 7 else SlotOutcome.FAILED
            history.pairs.slot(j.name, "production", outcome.value)
    history.pairs.publish({(j.name, "production"): _figures(i) for i, j in enumerate(journeys)})
    return WithoutCreated(registry), [metrics.pair_text, history.text]


def _figures(i: int) -> dict[str, WindowStats]:
    # One pair in three had an incident (MTTR known); one in five had two (MTBF known).
    mttr = 120.0 + i if i % 3 == 0 else None
    mtbf = 3600.0 * (1 + i % 7) if i % 5 == 0 else None
    return {
        w: WindowStats(
            w,
            8640,
            8600,
            0.99537 - (i % 9) / 1000,
            86400.0,
            86000.0,
            0.995,
            1 if mttr else 0,
            0,
            mttr,
            30.0 if mttr else None,
            mtbf,
            mttr,
            mttr,
            mttr,
        )
        for w in WINDOWS
    }


def cpu(fn: Callable[[], bytes], reps: int) -> tuple[float, int]:
    """Median CPU seconds of `fn` over `reps` calls, and the size of its output."""
    times = []
    size = 0
    for _ in range(reps):
        t0 = time.process_time()
        size = len(fn())
        times.append(time.process_time() - t0)
    return statistics.median(times), size


async def main(size: Size) -> dict[str, Any]:
    reps = size.pick(7, 3, 1)
    points = size.pick(
        ((1_000, False), (5_000, False), (5_000, True)),
        ((1_000, False), (5_000, False), (5_000, True)),
        ((20, False), (20, True)),
    )
    print("/metrics body: old = generate_latest over the whole registry;")
    print("new = web.server.render (rest of the registry + per-pair and history families as text)")
    print(
        f"{'pairs':>7} {'step hist':>9} {'series':>8} {'MB':>6} {'old CPU':>9} "
        f"{'new CPU':>9} {'first new':>9} {'old/new':>8}"
    )
    figures = []
    for pairs, step_histograms in points:
        exposed, sources = build(pairs, step_histograms=step_histograms)
        t0 = time.process_time()
        first = render(exposed, sources)
        first_cpu = time.process_time() - t0
        old_cpu, old_size = cpu(lambda: generate_latest(exposed), reps)  # noqa: B023
        new_cpu, new_size = cpu(lambda: render(exposed, sources), reps)  # noqa: B023
        series = sum(1 for line in first.splitlines() if not line.startswith(b"#"))
        same = "same" if old_size == new_size == len(first) else "SIZE DIFFERS"
        ratio = old_cpu / new_cpu if new_cpu else float("inf")
        print(
            f"{pairs:>7} {'on' if step_histograms else 'off':>9} {series:>8} "
            f"{new_size / 1e6:>6.1f} {old_cpu * 1000:>7.0f}ms {new_cpu * 1000:>7.0f}ms "
            f"{first_cpu * 1000:>7.0f}ms {ratio:>7.1f}x  ({same} size)"
        )
        figures.append(
            {
                "pairs": pairs,
                "step_histograms": step_histograms,
                "series": series,
                "bytes": new_size,
                "old_cpu": old_cpu,
                "new_cpu": new_cpu,
                "first_new_cpu": first_cpu,
                "same_size": old_size == new_size,
            }
        )
    return {"renders": figures}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer renders")
    p.add_argument("--smoke", action="store_true", help="smallest sizes (does it still run?)")
    args = p.parse_args()
    asyncio.run(main(Size.of(quick=args.quick, smoke=args.smoke)))
