"""`make bench`: every benchmark, each printing its side-by-side ratios.

Usage: python bench/run.py [--quick] [NAME ...]
(names: http, dispatch, browser, detection, compare, soak, history, tls, status_page,
vitals, tracing, metrics)
Figures and the commands that produced them are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHES = {
    "http": "http_bench",  # issue 2: CPU per run vs raw httpx, scheduler lag
    "dispatch": "dispatch",  # issue 9: the slot-grid dispatcher vs one APScheduler job per pair
    "browser": "browser",  # issue 3: pooled vs launch-per-run, RSS growth
    "detection": "detection",  # issue 4: time to detect vs Prometheus + blackbox_exporter
    "compare": "compare",  # issue 14: false-regression and detection rates of verdicts
    "soak": "soak",  # issue 11: a 2-minute soak with faults (`make soak` for the long one)
    "history": "history_bench",  # issue 12: history on vs off, API on a million runs
    "status_page": "status_page_bench",  # issue 13: / and a journey page, 500 journeys, 1M runs
    "vitals": "vitals_bench",  # issue 15: a browser run with Web Vitals on vs off
    "tls": "tls_bench",  # issue 15: certificate capture per run, parse per change
    "tracing": "tracing_bench",  # issue 15: CPU per run with OpenTelemetry export on vs off
    "metrics": "metrics_render",  # issue 9: /metrics render CPU, generate_latest vs text
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    p.add_argument("names", nargs="*", help=f"which to run (default: all of {list(BENCHES)})")
    args = p.parse_args()
    unknown = set(args.names) - BENCHES.keys()
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHES)}")
    failed = []
    for name in args.names or list(BENCHES):
        try:
            module = importlib.import_module(BENCHES[name])
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"\n######## {name} ({time.strftime('%Y-%m-%d %H:%M:%S')})", flush=True)
        # A benchmark may point logging at a stream it closes when done (http sends the
        # daemon's run log to /dev/null): each starts from the library defaults.
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        try:
            asyncio.run(module.main(args.quick))
        except Exception as exc:
            failed.append(name)
            print(f"== {name}: FAILED: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
