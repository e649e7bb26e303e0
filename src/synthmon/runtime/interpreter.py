"""The interpreter's settings for the long-running daemon (`synthmon run`): the garbage
collector and the thread switch interval.

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

The switch interval: /metrics is rendered in a thread so the loop keeps starting runs,
but the two share the GIL. With CPython's 5 ms interval, each time the loop thread
lets go of the GIL for a syscall (every send, receive and poll) the render thread may
keep it for up to 5 ms, so during a scrape the loop crawls (the "convoy effect").
At 1 ms, measured at 2,000 journeys every 10 s with a scrape every 15 s: p99 start
lag 87-93 ms against 145-324 ms at 5 ms, for the same CPU (docs/benchmarks.md,
"Thread switch interval").
"""

from __future__ import annotations

import gc
import sys

YOUNG_THRESHOLD = 10_000
SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005


def tune_for_daemon() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    sys.setswitchinterval(SWITCH_INTERVAL)
