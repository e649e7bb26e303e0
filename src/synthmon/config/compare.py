"""The `[compare]` section and `@journey(compare={...})`: thresholds of
`synthmon compare` (blue/green and canary verdicts). Validation only.

    [compare]
    runs = 30                  # runs per side and journey
    alpha = 0.05               # the false-regression rate allowed over a comparison
    max_failure_delta = 0.0    # allowed increase of the failure rate (0.1 = 10 points)
    max_latency_ratio = 1.2    # allowed candidate/baseline latency ratio (median, p95)
    [compare.journeys.checkout]
    max_latency_ratio = 1.5

Precedence, most specific first: a command-line flag, `[compare.journeys.<name>]`,
`@journey(compare=...)`, `[compare]`, the defaults above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthmon.config.keys import key_problems


class CompareOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_failure_delta: float | None = Field(default=None, ge=0, le=1)
    max_latency_ratio: float | None = Field(default=None, ge=1)


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: int = Field(default=30, ge=5, le=1000)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    max_failure_delta: float = Field(default=0.0, ge=0, le=1)
    max_latency_ratio: float = Field(default=1.2, ge=1)
    journeys: dict[str, CompareOverride] = Field(default_factory=dict)


def parse_compare(data: Mapping[str, Any]) -> CompareOverride:
    """Validate `@journey(compare=...)`; ValueError names each bad key."""
    try:
        return CompareOverride.model_validate(dict(data))
    except ValidationError as exc:
        raise ValueError(
            f"invalid compare thresholds ({key_problems(exc, 'compare')}); valid keys: "
            f"{', '.join(CompareOverride.model_fields)}"
        ) from None
