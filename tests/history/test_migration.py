"""A history file written by the previous schema (version 1), opened by the daemon as
`synthmon run` builds it: upgraded in place, its runs served, its last slot kept."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from synthmon.runtime.sqlite import migrate
from synthmon.scheduling.slots import Grid, phase
from synthmon.sinks.history.schema import MIGRATIONS
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon
from tests.history.conftest import (
    FAST_CRITICAL,
    HISTORY_FAST,
    assert_grid_covered,
    check,
    eventually,
)

V1_RUN = (
    "INSERT INTO runs (run_id, journey, target, location, trace_id, slot_at, started_at, "
    "duration, status, reason, failed_step, error_type, error, attempt, retried, counted, "
    "steps, artifacts) VALUES (?, 'home', ?, NULL, ?, ?, ?, 0.1, 'success', NULL, NULL, "
    "NULL, NULL, 1, 0, 1, "
    '\'[{"name":"open home","status":"success","duration_seconds":0.1,"soft":false,'
    "\"error\":null}]', '[]')"
)
V1_SLOT = (
    "INSERT INTO slots (journey, target, slot_at, last_slot_at, count, span, outcome, "
    "reason, run_id, recorded_at) VALUES ('home', ?, ?, ?, 1, 0, 'passed', NULL, ?, ?)"
)


def _version_1_file(path: Path, last_slot: int, grid: Grid) -> list[str]:
    """A file as the previous synthmon left it: five runs and slots of home@demo up
    to slot `last_slot`, and older runs of a target no longer configured."""
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    migrate(db, MIGRATIONS[:1], name="history")
    ids = []
    for k in range(last_slot - 4, last_slot + 1):
        for target, at in (("demo", grid.at(k)), ("old", grid.at(k) - 100.5)):
            run_id = f"{int(at * 1000):012x}{k % 1000:04d}{target:0>16}"[:32]
            db.execute(V1_RUN, (run_id, target, run_id, at, at + 0.01))
            db.execute(V1_SLOT, (target, at, at, run_id, at + 0.2))
            ids.append(run_id)
    db.close()
    return ids


class TestVersion1File:
    async def test_upgraded_in_place_and_served(self, shop: RunningShop, tmp_path: Path) -> None:
        """The daemon upgrades a version-1 file: its runs are served newest first with
        the new ones (both targets merged), and the slots since its last recorded slot
        are one missed gap (daemon_down), every slot of the grid recorded once."""
        grid = Grid(1.0, phase("home@demo", 1.0))
        last_slot = grid.index(time.time()) - 3
        db_path = tmp_path / "data" / "history.sqlite3"
        old_ids = _version_1_file(db_path, last_slot, grid)
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"h.py": FAST_CRITICAL},
            extra_toml=HISTORY_FAST,
        )
        async with (
            run_daemon(settings) as (daemon, results),
            httpx.AsyncClient(base_url=daemon.server.url) as c,
        ):
            await results.wait_for(lambda rs: len(rs) >= 2, timeout=10)

            async def runs_with_new() -> list[dict[str, Any]] | None:
                body = check(
                    "/api/journeys/{name}/runs",
                    await c.get("/api/journeys/home/runs?limit=1000"),
                )
                rows: list[dict[str, Any]] = body["runs"]
                return rows if len(rows) >= len(old_ids) + 2 else None

            runs = await eventually(runs_with_new, what="new runs stored beside the old")
            missed = check(
                "/api/slots", await c.get("/api/slots?journey=home&target=demo&outcome=missed")
            )["slots"]
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert {r["run_id"] for r in runs} >= set(old_ids)
        assert {r["target"] for r in runs} == {"demo", "old"}
        starts = [r["started_at"] for r in runs]
        assert starts == sorted(starts, reverse=True)
        assert len(missed) == 1 and missed[0]["reason"] == "daemon_down"
        assert missed[0]["slot_at"] == grid.at(last_slot + 1)
        assert_grid_covered(db_path, "home@demo", 1.0)
