"""`synthmon compare`: a blue/green or canary verdict from the monitoring journeys.

Runs each selected journey `--runs` times against the baseline and the candidate,
interleaved A B B A A B ... so that drift in the environment (a noisy neighbour, a
cache warming up) hits both sides equally, then asks `cli.verdict` whether the
candidate fails more often or is slower. Prints a verdict table; writes a markdown
report and JSON on request. Exit 0: promote; 1: regression (which journey, step,
metric, by how much, with its p-value or interval); 2: usage/config error.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from synthmon.config.compare import CompareConfig, parse_compare
from synthmon.config.settings import Settings

if TYPE_CHECKING:
    from synthmon.cli.verdict import Finding, Thresholds, Verdict
    from synthmon.journeys.dsl import Journey
    from synthmon.model import RunResult, Target

# scipy, the runners and the journeys are imported by the functions that use them, so
# building the CLI's parser (every command, the healthcheck too) stays cheap.

EXIT_PROMOTE, EXIT_REGRESSION, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare a candidate target with a baseline (blue/green, canary verdict)",
        description="Exit 0: promote; 1: regression; 2: usage or config error.",
    )
    p.add_argument("--config", "-c", help="TOML config file")
    p.add_argument("--baseline", required=True, help="target serving today (blue, stable)")
    p.add_argument("--candidate", required=True, help="target to promote (green, canary)")
    p.add_argument("--runs", type=int, help="runs per side and journey (default [compare].runs)")
    p.add_argument("--journey", "-j", action="append", default=[], help="journey (repeat)")
    p.add_argument("--tag", action="append", default=[], help="journeys with this tag (repeat)")
    p.add_argument("--max-failure-delta", type=float, help="allowed failure-rate increase")
    p.add_argument("--max-latency-ratio", type=float, help="allowed candidate/baseline latency")
    p.add_argument("--alpha", type=float, help="false-regression rate (default 0.05)")
    p.add_argument("--report", type=Path, help="write a markdown report here")
    p.add_argument("--json", type=Path, help="write the verdict as JSON here")


def thresholds_for(
    journeys: Sequence[Journey], cfg: CompareConfig, args: Any
) -> dict[str, Thresholds]:
    from synthmon.cli.verdict import Thresholds

    out = {}
    for j in journeys:
        fd, lr = cfg.max_failure_delta, cfg.max_latency_ratio
        for override in (parse_compare(j.compare), cfg.journeys.get(j.name)):
            if override is not None:
                fd = override.max_failure_delta if override.max_failure_delta is not None else fd
                lr = override.max_latency_ratio if override.max_latency_ratio is not None else lr
        if args.max_failure_delta is not None:
            fd = args.max_failure_delta
        if args.max_latency_ratio is not None:
            lr = args.max_latency_ratio
        out[j.name] = Thresholds(max_failure_delta=fd, max_latency_ratio=lr)
    return out


async def interleaved_runs(
    settings: Settings,
    journeys: Sequence[Journey],
    baseline: Target,
    candidate: Target,
    *,
    runs: int,
    out: TextIO,
) -> dict[str, tuple[list[RunResult], list[RunResult]]]:
    """Each journey `runs` times per side in A B B A order, one run at a time, after
    one unrecorded warm-up run per side (the first run of a process pays for imports
    and the first connection, which would count against whichever side went first)."""
    from synthmon.cli.once import build_executor

    pairs = [(j, t) for j in journeys for t in (baseline, candidate)]
    executor, runners = build_executor(settings, pairs, emit=lambda r: None, retries=0)
    results: dict[str, tuple[list[RunResult], list[RunResult]]] = {}
    try:
        for j in journeys:
            base: list[RunResult] = []
            cand: list[RunResult] = []
            for target in (baseline, candidate):
                await executor.run_pair(j, target)
            for i in range(runs):
                order = (baseline, candidate) if i % 2 == 0 else (candidate, baseline)
                for target in order:
                    r = await executor.run_pair(j, target)
                    (base if target is baseline else cand).append(r)
            results[j.name] = (base, cand)
            fb = sum(1 for r in base if not r.ok)
            fc = sum(1 for r in cand if not r.ok)
            print(
                f"{j.name}: {runs} runs each; failed {fb} on {baseline.name}, "
                f"{fc} on {candidate.name}",
                file=out,
                flush=True,
            )
    finally:
        for runner in runners.values():
            close = getattr(runner, "aclose", None)
            if close is not None:
                await close()
    return results


def _fmt(f: Finding) -> tuple[str, str, str, str]:
    if f.metric == "failures":
        base, cand = f"{f.baseline:.0%}", f"{f.candidate:.0%}"
        change = f"{f.change:+.0%} (max {f.threshold:+.0%})"
    elif math.isnan(f.baseline):
        return "-", "-", "-", f.note or ""
    else:
        base, cand = f"{f.baseline * 1000:.0f} ms", f"{f.candidate * 1000:.0f} ms"
        change = f"{f.change:.2f}x (max {f.threshold:.2f}x)"
    if f.p_value is not None:
        evidence = f"p={f.p_value:.3g}"
    elif f.interval is not None:
        evidence = f"ratio >= {f.interval[0]:.2f}"
    else:
        evidence = ""
    return base, cand, change, evidence


def table(verdict: Verdict) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("JOURNEY", "METRIC", "BASELINE", "CANDIDATE", "CHANGE", "EVIDENCE", "VERDICT", "STEP")
    ]
    for f in verdict.findings:
        base, cand, change, evidence = _fmt(f)
        word = "REGRESSION" if f.regression else "ok"
        step = f"{f.step}: {f.step_detail}" if f.regression and f.step else ""
        rows.append((f.journey, f.metric, base, cand, change, evidence, word, step))
    return rows


def markdown(verdict: Verdict, baseline: str, candidate: str, runs: int) -> str:
    head = "PROMOTE" if verdict.promote else "REGRESSION"
    lines = [
        f"# synthmon compare: {head}",
        "",
        f"Candidate `{candidate}` against baseline `{baseline}`, {runs} interleaved runs "
        f"per side and journey; false-regression rate at most {verdict.alpha:g}.",
        "",
    ]
    rows = table(verdict)
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "---|" * len(rows[0]))
    lines.extend("| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows[1:])
    for f in verdict.regressions:
        lines += ["", f"## {f.journey}: {f.metric}", ""]
        base, cand, change, evidence = _fmt(f)
        lines.append(f"- baseline {base}, candidate {cand}: {change}; {evidence}")
        if f.step:
            lines.append(f"- step `{f.step}`: {f.step_detail}")
        if f.note:
            lines.append(f"- first error: {f.note}")
    return "\n".join(lines) + "\n"


def compare_command(args: Any, settings: Settings, *, out: TextIO, err: TextIO) -> int:
    from synthmon.cli.once import load_selection, quiet_logging

    quiet_logging(settings, err)
    cfg = settings.compare
    runs = args.runs if args.runs is not None else cfg.runs
    alpha = args.alpha if args.alpha is not None else cfg.alpha
    if runs < 5 or not 0 < alpha < 0.5:
        print("synthmon compare: --runs must be >= 5 and 0 < --alpha < 0.5", file=err)
        return EXIT_USAGE
    if args.baseline == args.candidate:
        print("synthmon compare: baseline and candidate are the same target", file=err)
        return EXIT_USAGE
    from synthmon.cli.reports import write_bytes
    from synthmon.cli.verdict import compare

    targets = [args.baseline, args.candidate]
    loaded = load_selection(
        settings, "compare", args.journey, args.tag, targets, base_url=None, err=err
    )
    if loaded is None:
        return EXIT_USAGE
    chosen, _ = loaded
    journeys = list({j.name: j for j, _ in chosen.pairs}.values())
    if not journeys:
        print("synthmon compare: no selected journey runs against both targets", file=err)
        return EXIT_USAGE
    by_name = {t.name: t for t in settings.target_list()}
    baseline, candidate = by_name[args.baseline], by_name[args.candidate]
    results = asyncio.run(
        interleaved_runs(settings, journeys, baseline, candidate, runs=runs, out=out)
    )
    verdict = compare(results, thresholds_for(journeys, cfg, args), alpha=alpha)
    rows = table(verdict)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)
    print(
        "PROMOTE" if verdict.promote else f"REGRESSION in {len(verdict.regressions)} check(s)",
        file=out,
    )
    if args.report is not None:
        write_bytes(args.report, markdown(verdict, baseline.name, candidate.name, runs).encode())
    if args.json is not None:
        body = _json(verdict, baseline.name, candidate.name, runs, results)
        write_bytes(args.json, json.dumps(body, indent=2).encode())
    return EXIT_PROMOTE if verdict.promote else EXIT_REGRESSION


def _json(
    verdict: Verdict,
    baseline: str,
    candidate: str,
    runs: int,
    results: Mapping[str, tuple[list[RunResult], list[RunResult]]],
) -> dict[str, Any]:
    return {
        "verdict": "promote" if verdict.promote else "regression",
        "baseline": baseline,
        "candidate": candidate,
        "runs": runs,
        "alpha": verdict.alpha,
        "findings": [f.as_json() for f in verdict.findings],
        "failures": {
            j: {baseline: sum(not r.ok for r in b), candidate: sum(not r.ok for r in c)}
            for j, (b, c) in results.items()
        },
    }
