"""Alert states of steady passes reach the alert store in chunks (alerting/engine.py
`_flush_in_chunks`), through a daemon built as `synthmon run` builds it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from synthmon.alerting.engine import FLUSH_CHUNK
from synthmon.alerting.store import AlertStore
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon

# More than two chunks: even if a tick falls in the middle of the burst of passes,
# one batch holds more than a chunk.
PAIRS = 2 * FLUSH_CHUNK + 50

MANY = """
    from synthmon import Context, journey

    def make(i):
        @journey(name=f"steady{i:03d}", interval="7d", timeout="5s")
        async def steady(ctx: Context) -> None:
            async with ctx.step("home"):
                r = await ctx.http.get("/healthz")
                assert r.status_code == 200
        return steady

    for i in range({n}):
        globals()[f"steady{i:03d}"] = make(i)
"""


class TestSteadyPassesPersisted:
    async def test_more_pairs_than_a_chunk_are_all_written_while_running(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """With more pairs passing at once than one flush chunk holds, every pair's state
        (its last success) reaches the alert store while the daemon runs, so a crash
        forgets none."""
        settings = make_settings(
            tmp_path,
            targets={"shop": shop.url},
            journeys={"many.py": MANY.replace("{n}", str(PAIRS))},
            extra_toml="""
                [alerting]
                resend_interval = "20s"  # a tick every 5 s: the burst lands in one
            """,
        )
        async with run_daemon(settings) as (daemon, _):
            # Each pair passes once, all at the same time: one batch of steady passes,
            # more than a chunk, and no later pass to write a forgotten one again.
            target = daemon.targets["shop"]
            await asyncio.gather(*(daemon.run_pair(j, target) for j in daemon.journeys.values()))
            await daemon.fanout.flush()
            deadline = time.monotonic() + 30
            while True:
                store = AlertStore(Path(settings.data_dir) / "alerting.sqlite3")
                try:
                    states = store.load_states()
                finally:
                    store.close()
                written = {
                    k for k, v in states.items() if v["policy"]["last_success_at"] is not None
                }
                if len(written) >= PAIRS or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        assert len(written) == PAIRS, f"{len(written)} of {PAIRS} states written"
