"""`make bench`: every benchmark, each printing its side-by-side ratios.

Usage: python bench/run.py [--quick | --smoke | --check] [NAME ...]
(names: http, dispatch, browser, detection, compare, soak, history, tls, status_page,
vitals, tracing)
Figures and the commands that produced them are recorded in docs/benchmarks.md.

--smoke (`make bench-smoke`, run by CI after `make container-check`): every benchmark at
the smallest sizes that still take its whole code path, so none can rot unseen. It
fails (exit 1) when a bench raises, cannot be imported, returns no figures or a NaN
among them; it asserts no timing, and its figures mean nothing.

Every run first checks the registry (`--check` does only that): each bench/*.py with a
top-level `async def main` must be in BENCHES and take the size first. A new bench:
`async def main(size: Size, ...) -> dict[str, Any]` in bench/<module>.py, its sizes
from `size.pick(full=..., quick=..., smoke=...)` (bench/sizes.py), printing its figures
and returning them; then one line in BENCHES.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import inspect
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import structlog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sizes import Size  # noqa: E402

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
}


def registry_problems() -> list[str]:
    """Benches nobody runs: a bench/*.py with a top-level `async def main` missing from
    BENCHES, or a main that does not take the Size first (run.py could not size it).
    Read from the source, so a bench that no longer imports is still found."""
    problems = []
    registered = set(BENCHES.values())
    for path in sorted(HERE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        mains = [n for n in tree.body if isinstance(n, ast.AsyncFunctionDef) and n.name == "main"]
        if not mains:
            continue
        if path.stem not in registered:
            problems.append(
                f"bench/{path.name} has an async main() but is not in BENCHES "
                "(bench/run.py): register it, or nothing runs it and it rots"
            )
        args = mains[0].args.posonlyargs + mains[0].args.args
        if not args or args[0].arg != "size":
            problems.append(
                f"bench/{path.name}: main() must take `size: Size` first "
                "(bench/sizes.py; bench/run.py passes FULL, QUICK or SMOKE)"
            )
    for name, module in BENCHES.items():
        if not (HERE / f"{module}.py").is_file():
            problems.append(f"BENCHES[{name!r}] names bench/{module}.py, which does not exist")
    return problems


def figures_problem(figures: Any) -> str | None:
    """Why a smoke run's figures are not figures: none returned, or a NaN among them
    (a phase that measured nothing: no runs, no lag samples, no detection)."""
    if not figures:
        return "returned no figures (main() must return what it printed)"
    stack: list[tuple[str, Any]] = [("", figures)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{where}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, float) and math.isnan(value):
            return f"figure {where.lstrip('.')} is NaN: that phase measured nothing"
    return None


def run_one(name: str, size: Size) -> str | None:
    """Run one bench; None when it ran (and, smoke, produced figures), else why not."""
    try:
        module = importlib.import_module(BENCHES[name])
    except ImportError as exc:
        return f"not available ({type(exc).__name__}: {exc})"
    params = list(inspect.signature(module.main).parameters)
    if not params or params[0] != "size":
        return "main() does not take `size: Size` first (bench/sizes.py)"
    # A benchmark may point logging at a stream it closes when done (http sends the
    # daemon's run log to /dev/null): each starts from the library defaults.
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    try:
        figures = asyncio.run(module.main(size))
    # SystemExit too: a bench that cannot start a neighbour exits with its reason, which
    # must fail that bench, not end the run before the others.
    except (Exception, SystemExit) as exc:
        return f"FAILED: {type(exc).__name__}: {exc}"
    return figures_problem(figures) if size.smoke else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer iterations")
    mode.add_argument(
        "--smoke", action="store_true", help="smallest sizes: does every bench still run? (CI)"
    )
    mode.add_argument("--check", action="store_true", help="only check the registry (BENCHES)")
    p.add_argument("names", nargs="*", help=f"which to run (default: all of {list(BENCHES)})")
    args = p.parse_args()
    unknown = set(args.names) - BENCHES.keys()
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHES)}")
    problems = registry_problems()
    for problem in problems:
        print(f"== registry: {problem}", flush=True)
    if args.check:
        return 1 if problems else 0
    size = Size.of(quick=args.quick, smoke=args.smoke)
    if size.smoke:
        print("== smoke: smallest sizes, only checks that each bench runs; figures mean nothing")
    outcome: dict[str, tuple[str | None, float]] = {}
    started = time.monotonic()
    for name in args.names or list(BENCHES):
        print(f"\n######## {name} ({time.strftime('%Y-%m-%d %H:%M:%S')})", flush=True)
        t0 = time.monotonic()
        problem = run_one(name, size)
        outcome[name] = (problem, time.monotonic() - t0)
        if problem:
            print(f"== {name}: {problem}", flush=True)
    print(f"\n######## {size.value}: {time.monotonic() - started:.0f} s in all")
    for name, (problem, seconds) in outcome.items():
        print(f"  {name:<12} {seconds:6.1f} s  {problem or 'ok'}")
    return 1 if problems or any(problem for problem, _ in outcome.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
