"""When a passing run is degraded, and how the SyntheticJourneyDegraded alert says why:
over the journey's `degraded_after` budget, or a page over its Web Vitals thresholds
(`@journey(web_vitals=...)`). Degraded is a warning, never a failure."""

from __future__ import annotations

from synthmon.config.durations import format_duration
from synthmon.config.vitals import format_value, rating
from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult


def watches(journey: Journey) -> bool:
    """Whether the journey's passing runs are checked for degradation at all."""
    return journey.degraded_after is not None or bool(journey.web_vitals)


def is_degraded(journey: Journey, result: RunResult) -> bool:
    budget = journey.degraded_after
    return (budget is not None and result.duration > budget) or result.vitals_breached


def summary(journey: Journey, result: RunResult) -> str:
    head = f"Journey {journey.name} on {result.target}"
    budget = journey.degraded_after
    if budget is not None and result.duration > budget:
        return f"{head} is slower than its {format_duration(budget)} budget"
    if result.vitals_breached:
        return f"{head} is over its Web Vitals thresholds"
    return f"{head} is degraded"


def error(journey: Journey, result: RunResult) -> str:
    """What was over which limit: "run took 2.50s, budget 1s; LCP 3.14s (needs
    improvement) over 2.5s at step 'hero' (http://shop/hero)"."""
    parts: list[str] = []
    budget = journey.degraded_after
    if budget is not None and result.duration > budget:
        parts.append(f"run took {result.duration:.2f}s, budget {format_duration(budget)}")
    for page in result.web_vitals:
        values = dict(page.values)
        for metric, limit in page.breaches:
            value = values[metric]
            parts.append(
                f"{metric} {format_value(metric, value)} ({rating(metric, value)}) over "
                f"{format_value(metric, limit)} at step '{page.step}' ({page.url})"
            )
    return "; ".join(parts)
