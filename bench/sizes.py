"""How big a benchmark runs: the one argument `bench/run.py` passes to every bench's
`async def main(size: Size, ...)`.

    FULL   `make bench` (`bench/run.py`): the sizes behind docs/benchmarks.md's figures
    QUICK  `bench/run.py --quick`: fewer iterations, the figures still indicative
    SMOKE  `make bench-smoke` (`bench/run.py --smoke`, run by CI): the smallest sizes that
           still take every code path of the bench (daemon built, runs finished, the
           neighbours such as blackbox_exporter, Prometheus or Chromium started, figures
           printed and returned); the figures mean nothing

A bench picks each size with `size.pick(full=..., quick=..., smoke=...)`, so the three
sit side by side and the full one stays what docs/benchmarks.md was measured with.
"""

from __future__ import annotations

import enum
from typing import TypeVar

T = TypeVar("T")


class Size(enum.Enum):
    FULL = "full"
    QUICK = "quick"
    SMOKE = "smoke"

    def pick(self, full: T, quick: T, smoke: T) -> T:
        # By value: run.py and a bench may hold this module under two names
        # (`sizes` and `bench.sizes`), whose members are not identical.
        return {"full": full, "quick": quick, "smoke": smoke}[self.value]

    @property
    def smoke(self) -> bool:
        return self.value == "smoke"

    @classmethod
    def of(cls, *, quick: bool = False, smoke: bool = False) -> Size:
        """From a script's --quick / --smoke flags."""
        return cls.SMOKE if smoke else cls.QUICK if quick else cls.FULL
