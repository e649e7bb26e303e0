"""The statistics behind `synthmon compare`: is the candidate worse than the baseline?

Per journey, three one-sided questions, each answered by a well-known test from
scipy.stats and turned into a regression only when it is both *significant* and
*large enough to matter* (the thresholds):

- **failures**: Boschloo's exact test on the 2x2 table of failed/passed runs
  (alternative: the candidate fails more often). Exact, so the false-regression rate
  holds at any sample size, and uniformly more powerful than Fisher's exact test.
  A regression when p < the adjusted alpha and the failure-rate increase exceeds
  `max_failure_delta`.
- **median latency** of passing runs: Mann-Whitney U (alternative: candidate slower).
  A regression when p < the adjusted alpha and median(candidate)/median(baseline)
  exceeds `max_latency_ratio`.
- **p95 latency**: a bootstrap confidence interval of p95(candidate)/p95(baseline)
  at level 1 - adjusted alpha; a regression when its lower bound exceeds
  `max_latency_ratio` (we are confident the tail got slower by more than allowed).

Multiple testing: of the error budget `alpha` (5 %), two thirds go to Holm-Bonferroni
over the failure and median questions of every journey, one third to the p95
intervals (Bonferroni over journeys), so the chance of flagging anything between two
identical environments is at most `alpha` by design.

Steps are not tested for the verdict (that would multiply the questions and cost
power); for a flagged journey, the step that explains it is named from the same runs:
the step where the candidate's extra failures happened, or the step whose median grew
most (with its own, unadjusted Mann-Whitney p-value, for reading, not for deciding).

Sample size: with 30 runs per side (the default), a candidate failing 30 % of runs is
flagged with probability ≈ 0.98 against a clean baseline (one journey); 20 runs give
≈ 0.8. docs/deploy-verification.md has the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from synthmon.model import RunResult, Status


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_failure_delta: float = 0.0
    max_latency_ratio: float = 1.2


@dataclass(slots=True)
class Finding:
    """The answer to one question about one journey."""

    journey: str
    metric: str
    baseline: float
    candidate: float
    # failures: the increase of the failure rate; latency: candidate / baseline.
    change: float
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    threshold: float = 0.0
    regression: bool = False
    step: str | None = None
    step_detail: str | None = None
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "metric": self.metric,
            "baseline": _finite(self.baseline),
            "candidate": _finite(self.candidate),
            "change": _finite(self.change),
            "p_value": _finite(self.p_value),
            "interval": [_finite(x) for x in self.interval] if self.interval else None,
            "threshold": self.threshold,
            "regression": self.regression,
            "step": self.step,
            "step_detail": self.step_detail,
            "note": self.note,
        }


@dataclass(slots=True)
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    alpha: float = 0.05

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]

    @property
    def promote(self) -> bool:
        return not self.regressions


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def _durations(results: Sequence[RunResult]) -> list[float]:
    return [r.duration for r in results if r.status is Status.SUCCESS]


def _step_durations(results: Sequence[RunResult], step: str) -> list[float]:
    return [
        s.duration for r in results if r.status is Status.SUCCESS for s in r.steps if s.name == step
    ]


def failure_test(
    journey: str, base: Sequence[RunResult], cand: Sequence[RunResult], t: Thresholds
) -> Finding:
    fa = sum(1 for r in base if r.status is not Status.SUCCESS)
    fc = sum(1 for r in cand if r.status is not Status.SUCCESS)
    ra, rc = fa / len(base), fc / len(cand)
    finding = Finding(journey, "failures", ra, rc, rc - ra, threshold=t.max_failure_delta)
    if fc == 0 or rc - ra <= 0:
        finding.p_value = 1.0
        return finding
    table = [[fc, len(cand) - fc], [fa, len(base) - fa]]
    finding.p_value = float(stats.boschloo_exact(table, alternative="greater").pvalue)
    # Where the candidate's extra failures happened.
    where: dict[str, int] = {}
    for r in cand:
        if r.status is not Status.SUCCESS:
            key = r.failed_step or "(outside any step)"
            where[key] = where.get(key, 0) + 1
    step, n = max(where.items(), key=lambda kv: kv[1])
    base_n = sum(1 for r in base if r.status is not Status.SUCCESS and r.failed_step == step)
    finding.step = step
    finding.step_detail = f"failed {n}/{len(cand)} candidate runs vs {base_n}/{len(base)}"
    errors = [r.error_message for r in cand if r.failed_step == step and r.error_message]
    if errors:
        finding.note = errors[0].splitlines()[0]
    return finding


def median_test(
    journey: str, base: Sequence[RunResult], cand: Sequence[RunResult], t: Thresholds
) -> Finding:
    a, c = _durations(base), _durations(cand)
    if len(a) < 3 or len(c) < 3:
        return Finding(
            journey, "median_latency", math.nan, math.nan, math.nan,
            threshold=t.max_latency_ratio, note="too few passing runs to compare latency",
        )  # fmt: skip
    ma, mc = float(np.median(a)), float(np.median(c))
    ratio = mc / ma if ma > 0 else math.inf
    p = float(stats.mannwhitneyu(c, a, alternative="greater").pvalue)
    finding = Finding(
        journey, "median_latency", ma, mc, ratio, p_value=p, threshold=t.max_latency_ratio
    )
    _slowest_step(finding, base, cand)
    return finding


def p95_test(
    journey: str,
    base: Sequence[RunResult],
    cand: Sequence[RunResult],
    t: Thresholds,
    *,
    confidence: float,
    seed: int = 0,
) -> Finding:
    a, c = np.array(_durations(base)), np.array(_durations(cand))
    if len(a) < 5 or len(c) < 5:
        return Finding(
            journey, "p95_latency", math.nan, math.nan, math.nan,
            threshold=t.max_latency_ratio, note="too few passing runs to compare the tail",
        )  # fmt: skip
    pa, pc = float(np.percentile(a, 95)), float(np.percentile(c, 95))

    def ratio(cand_s: Any, base_s: Any, axis: int = -1) -> Any:
        return np.percentile(cand_s, 95, axis=axis) / np.percentile(base_s, 95, axis=axis)

    res = stats.bootstrap(
        (c, a),
        ratio,
        confidence_level=confidence,
        alternative="greater",  # one-sided: [low, inf)
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low = float(res.confidence_interval.low)
    finding = Finding(
        journey,
        "p95_latency",
        pa,
        pc,
        pc / pa if pa > 0 else math.inf,
        interval=(low, math.inf),
        threshold=t.max_latency_ratio,
    )
    finding.regression = low > t.max_latency_ratio
    _slowest_step(finding, base, cand)
    return finding


def _slowest_step(finding: Finding, base: Sequence[RunResult], cand: Sequence[RunResult]) -> None:
    names = [s.name for r in cand if r.status is Status.SUCCESS for s in r.steps]
    best: tuple[float, str, float] | None = None
    for step in dict.fromkeys(names):
        a, c = _step_durations(base, step), _step_durations(cand, step)
        if len(a) < 3 or len(c) < 3 or np.median(a) <= 0:
            continue
        r = float(np.median(c) / np.median(a))
        if best is None or r > best[0]:
            p = float(stats.mannwhitneyu(c, a, alternative="greater").pvalue)
            best = (r, step, p)
    if best is not None:
        finding.step = best[1]
        finding.step_detail = f"median {best[0]:.2f}x (Mann-Whitney p={best[2]:.3g})"


def compare(
    runs: Mapping[str, tuple[Sequence[RunResult], Sequence[RunResult]]],
    thresholds: Mapping[str, Thresholds],
    *,
    alpha: float = 0.05,
) -> Verdict:
    """`runs`: journey -> (baseline results, candidate results). The false-regression
    rate over the whole comparison is at most `alpha` (module docstring)."""
    journeys = max(len(runs), 1)
    holm_alpha, m = alpha * 2 / 3, 2 * journeys
    tail_confidence = 1 - (alpha / 3) / journeys
    verdict = Verdict(alpha=alpha)
    tested: list[Finding] = []
    for journey, (base, cand) in runs.items():
        t = thresholds[journey]
        verdict.findings.append(f := failure_test(journey, base, cand, t))
        tested.append(f)
        verdict.findings.append(f := median_test(journey, base, cand, t))
        tested.append(f)
        verdict.findings.append(p95_test(journey, base, cand, t, confidence=tail_confidence))
    # Holm: walk p-values upwards, comparing the k-th smallest with alpha / (m - k).
    ordered = sorted((f for f in tested if f.p_value is not None), key=lambda f: f.p_value or 1)
    for k, f in enumerate(ordered):
        assert f.p_value is not None
        if f.p_value >= holm_alpha / (m - k):
            break
        # Significant; a regression only when it is also larger than allowed.
        f.regression = f.change > f.threshold
    return verdict
