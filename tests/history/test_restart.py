"""`synthmon run` killed with SIGKILL for several intervals and restarted: the slots it
missed are recorded as missed, exactly, and the schedule keeps its phase."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from synthmon.scheduling.slots import Grid, phase
from synthmon_demo import RunningShop
from tests.harness import sample, write_config, write_journeys

PING = """
    from synthmon import Context, journey

    @journey(interval="1s", timeout="1s")
    async def ping(ctx: Context) -> None:
        async with ctx.step("home"):
            await ctx.http.get("/")
"""
KEY = "ping@demo"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(cfg: Path, port: int, log: IO[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
        [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    async with httpx.AsyncClient() as c:
        for _ in range(150):
            try:
                if (await c.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("daemon did not come up")


def _slots(db: Path) -> list[tuple[float, float, int, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT slot_at, last_slot_at, count, outcome, reason FROM slots "
            "WHERE journey = 'ping' ORDER BY slot_at"
        ).fetchall()


async def _wait_slots(db: Path, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                if sum(r[2] for r in _slots(db) if r[3] != "missed") >= n:
                    return
            except sqlite3.Error:
                pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {n} slots recorded in {timeout}s")


class TestMissedSlots:
    @pytest.mark.slow
    async def test_sigkill_gap_is_recorded_as_missed_exactly(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Killed for ~5 intervals and restarted: every slot of the 1 s grid from the
        first to the last is recorded exactly once, the gap as missed (daemon_down),
        and synthmon_slots_total{outcome="missed"} says the same number."""
        port = _free_port()
        jdir = write_journeys(tmp_path / "journeys", {"p.py": PING})
        cfg = write_config(
            tmp_path / "synthmon.toml",
            f"""
            journeys_dir = "{jdir}"
            data_dir = "{tmp_path / "data"}"
            [server]
            listen = "127.0.0.1:{port}"
            [history]
            flush_interval = "100ms"
            [logging]
            format = "json"
            [targets.demo]
            base_url = "{shop.url}"
            """,
        )
        db = tmp_path / "data" / "history.sqlite3"
        with (tmp_path / "daemon.log").open("w") as log:
            first = await _start(cfg, port, log)
            try:
                await _wait_slots(db, 3)
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait()
            before = _slots(db)
            await asyncio.sleep(5.0)  # five slots pass with nobody serving them
            second = await _start(cfg, port, log)
            try:
                await _wait_slots(db, len(before) + 3)
                async with httpx.AsyncClient() as c:
                    text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=30)
        after = _slots(db)
        grid = Grid(1.0, phase(KEY, 1.0))
        covered: dict[int, int] = {}
        for slot_at, last_at, count, _, _ in after:
            a, b = grid.index(slot_at), grid.index(last_at)
            assert abs(grid.at(a) - slot_at) < 0.005, "slot off the pair's phase grid"
            assert b - a + 1 == count
            for i in range(a, b + 1):
                covered[i] = covered.get(i, 0) + 1
        lo, hi = min(covered), max(covered)
        assert covered == dict.fromkeys(range(lo, hi + 1), 1), "a slot lost or counted twice"
        missed = [r for r in after if r[3] == "missed"]
        assert len(missed) == 1 and missed[0][4] == "daemon_down"
        last_before = max(grid.index(r[1]) for r in before)
        first_after = min(grid.index(r[0]) for r in after if r[3] != "missed" and r not in before)
        assert missed[0][2] == first_after - last_before - 1
        assert missed[0][2] >= 5
        labels = {"journey": "ping", "target": "demo", "outcome": "missed"}
        assert sample(text, "synthmon_slots_total", **labels) == missed[0][2]
