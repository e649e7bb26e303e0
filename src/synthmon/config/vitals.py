"""Web Vitals thresholds of browser journeys: `@journey(web_vitals={...})`. Validation
only (the browser runner measures, runners/browser/vitals.py).

    @journey(kind="browser", web_vitals={"LCP": "3s", "CLS": 0.15, "INP": None})

Defaults are the published "good" limits (web.dev/articles/vitals; web-vitals'
`*Thresholds[0]`): a value above its threshold makes the run *degraded* (a warning
alert), never failed. A key set to None drops that threshold; `web_vitals=False` drops
them all (the values are still measured and exported).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from synthmon.config.durations import format_duration, parse_duration

# The five metrics web-vitals reports, as it spells them; the two page-weight values
# synthmon adds beside them (no thresholds: a page's weight has no published band).
WEB_VITALS: tuple[str, ...] = ("TTFB", "FCP", "LCP", "CLS", "INP")
PAGE_WEIGHT: tuple[str, ...] = ("transfer_bytes", "requests")
METRICS: tuple[str, ...] = (*WEB_VITALS, *PAGE_WEIGHT)
# Seconds, except CLS (a unitless score).
GOOD: Mapping[str, float] = {"TTFB": 0.8, "FCP": 1.8, "LCP": 2.5, "CLS": 0.1, "INP": 0.2}
POOR: Mapping[str, float] = {"TTFB": 1.8, "FCP": 3.0, "LCP": 4.0, "CLS": 0.25, "INP": 0.5}


def parse_thresholds(spec: Mapping[str, Any] | bool | None) -> dict[str, float]:
    """The effective thresholds (base units) for `@journey(web_vitals=spec)`.

    Raises ValueError naming the metric and what is accepted.
    """
    if spec is None or spec is True:
        return dict(GOOD)
    if spec is False:
        return {}
    if not isinstance(spec, Mapping):
        raise ValueError(  # noqa: TRY004 - the DSL reports ValueErrors as the option's problem
            f"expected a dict such as {{'LCP': '2.5s', 'CLS': 0.1}} or False, got {spec!r}"
        )
    out = dict(GOOD)
    canonical = {name.lower(): name for name in WEB_VITALS}
    problems: list[str] = []
    for key, value in spec.items():
        name = canonical.get(str(key).lower())
        if name is None:
            problems.append(f"unknown metric {key!r}: thresholds apply to {', '.join(WEB_VITALS)}")
        elif value is None:
            out.pop(name, None)
        else:
            try:
                out[name] = _threshold(name, value)
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return out


def _threshold(name: str, value: Any) -> float:
    if name == "CLS":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"CLS={value!r}: CLS is a unitless score; give a number such as 0.1")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"CLS={value!r}: must be a finite number >= 0")
        return float(value)
    if not isinstance(value, str | int | float):
        raise ValueError(  # noqa: TRY004 - the DSL reports ValueErrors as the option's problem
            f"{name}={value!r}: give a duration such as '2.5s' or '200ms'"
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r}: {exc}") from None


def rating(metric: str, value: float) -> str:
    """web.dev's band of a Web Vital: "good", "needs improvement" or "poor"."""
    if value <= GOOD[metric]:
        return "good"
    return "needs improvement" if value <= POOR[metric] else "poor"


def format_value(metric: str, value: float) -> str:
    """A value as a human reads it in an alert: "3.1s", "250ms", "0.18", "2.1 MB"."""
    if metric == "CLS":
        return f"{value:.3g}"
    if metric == "requests":
        return f"{value:g}"
    if metric == "transfer_bytes":
        return f"{value / 1e6:.2f} MB" if value >= 1e6 else f"{value / 1e3:.1f} kB"
    return format_duration(round(value, 3)) if value >= 1 else f"{round(value * 1000)}ms"
