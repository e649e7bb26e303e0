"""The garbage collector's settings for the long-running daemon (`synthmon run`).

CPython's defaults suit short scripts: a young-generation collection every 700 net
allocations, and full collections that walk every object in the process. A daemon
that has imported httpx, pydantic, aiohttp, structlog and prometheus_client holds
~100,000 objects that live as long as it does, and a run allocates thousands that
die with it. Measured at 100 HTTP journeys a second (docs/benchmarks.md, "Garbage
collector"): ~500 young collections and 4 full ones of ~50 ms each in 12 s — a full
collection stops the event loop, so every run due meanwhile starts late.

So, once, before the event loop starts: collect, then `gc.freeze()` what is alive (the
imported libraries and the config: moved to a generation the collector never walks
again; they are never garbage), and collect the young generation every 10,000
allocations instead of 700. Journeys are loaded after the freeze, so a journey file
replaced by hot reload is collected as before.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_for_daemon() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
