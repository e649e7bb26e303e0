"""Where this instance probes from (`location = "eu-west-1"`), carried on every result.

Metrics get it as a label (`Metrics(location=...)`), log lines as a static field
(`cli.run`); results get it in `RunResult.extra["location"]` so that every sink
(logs, /api, history, alerts) reads the same value from the result itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from synthmon.model import RunResult

EXTRA_KEY = "location"


def location_stamp(location: str | None) -> Callable[[RunResult], RunResult] | None:
    """A function that adds `location` to a result, or None without a location."""
    if not location:
        return None

    def stamp(result: RunResult) -> RunResult:
        if result.extra.get(EXTRA_KEY) == location:
            return result
        return dataclasses.replace(result, extra={**result.extra, EXTRA_KEY: location})

    return stamp


def location_of(result: RunResult) -> str | None:
    return result.extra.get(EXTRA_KEY)
