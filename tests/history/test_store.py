"""The SQLite store alone: migrations and retention."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from synthmon.model import PageVitals, RunResult, Status
from synthmon.sinks.history.records import IncidentRecord, SlotOutcome, SlotRecord
from synthmon.sinks.history.schema import MIGRATIONS, SchemaTooNew, migrate
from synthmon.sinks.history.store import RunQuery, SqliteHistory


def _run(i: int, at: float) -> RunResult:
    return RunResult("j", "t", f"{i:032x}", f"{i:032x}", Status.SUCCESS, at, 0.1)


class TestMigrations:
    def test_older_file_is_upgraded(self, tmp_path: Path) -> None:
        """A file at an older version gets the missing steps, its data kept."""
        db = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
        assert migrate(db, MIGRATIONS) == len(MIGRATIONS)
        db.execute(
            "INSERT INTO slots (journey, target, slot_at, last_slot_at, count, span, "
            "outcome, recorded_at) VALUES ('j', 't', 1, 1, 1, 0, 'passed', 1)"
        )
        later = [*MIGRATIONS, "ALTER TABLE runs ADD COLUMN note TEXT"]
        assert migrate(db, later) == len(later)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(later)
        assert db.execute("SELECT count(*) FROM slots").fetchone()[0] == 1
        db.execute("SELECT note FROM runs").fetchall()

    def test_version_1_file_gains_web_vitals_and_keeps_its_runs(self, tmp_path: Path) -> None:
        """A history written before Web Vitals (version 1) is upgraded in place: its
        runs read back with no vitals, new runs store theirs."""
        path = tmp_path / "h.sqlite3"
        db = sqlite3.connect(path, isolation_level=None)
        migrate(db, MIGRATIONS[:1])
        db.execute(
            "INSERT INTO runs (run_id, journey, target, started_at, duration, status, "
            "attempt, retried, counted, steps, artifacts) "
            "VALUES ('old', 'j', 't', 1, 0.1, 'success', 1, 0, 1, '[]', '[]')"
        )
        db.close()
        store = SqliteHistory(path)
        page = PageVitals("home", "http://shop/", (("LCP", 3.0), ("CLS", 0.0)), (("LCP", 2.5),))
        store.write([dataclasses.replace(_run(2, 2.0), web_vitals=(page,))], [], [])
        old, new = store.run("old"), store.run(f"{2:032x}")
        store.close()
        assert old is not None and old["web_vitals"] == []
        assert new is not None and new["web_vitals"] == [
            {
                "step": "home",
                "url": "http://shop/",
                "values": {"LCP": 3.0, "CLS": 0.0},
                "over_threshold": {"LCP": 2.5},
            }
        ]

    def test_newer_file_is_refused(self, tmp_path: Path) -> None:
        """A file from a newer synthmon is refused, not guessed at (nor moved aside)."""
        db = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
        db.execute("PRAGMA user_version = 99")
        with pytest.raises(SchemaTooNew, match="newer"):
            migrate(db, MIGRATIONS)
        assert issubclass(SchemaTooNew, sqlite3.OperationalError)


class TestRetention:
    def test_old_rows_go_open_incidents_stay(self, tmp_path: Path) -> None:
        """Runs, slots and closed incidents older than max_age are deleted; an open
        incident stays however old."""
        store = SqliteHistory(tmp_path / "h.sqlite3")
        now = 1_000_000.0
        store.write(
            [_run(1, now - 100), _run(2, now - 10)],
            [
                SlotRecord("j", "t", now - 100, SlotOutcome.PASSED),
                SlotRecord("j", "t", now - 10, SlotOutcome.PASSED),
            ],
            [
                IncidentRecord(
                    "SyntheticJourneyFailed", "j", "t", 1, "critical", now - 90, now - 80, None
                ),
                IncidentRecord(
                    "SyntheticJourneyFailed", "j", "t", 2, "critical", now - 70, now - 60, None
                ),
            ],
        )
        store.write(
            [],
            [],
            [IncidentRecord("SyntheticJourneyFailed", "j", "t", 1, "critical", 0, 0, now - 50)],
        )
        deleted = store.maintain(now, max_age=30, max_bytes=1 << 30)
        assert deleted == {"runs": 1, "slots": 1, "incidents": 1}
        assert [r["run_id"] for r in store.runs(RunQuery())] == [f"{2:032x}"]
        assert [i.incident for i in store.incidents(None, None)] == [2]

    def test_size_cap_deletes_oldest_runs(self, tmp_path: Path) -> None:
        """Over max_bytes, the oldest runs go first until the file fits."""
        store = SqliteHistory(tmp_path / "h.sqlite3")
        store.write([_run(i, 1000.0 + i) for i in range(5000)], [], [])
        before = store.size_bytes()
        store.maintain(10_000.0, max_age=1e9, max_bytes=before // 2)
        assert store.size_bytes() <= before // 2
        newest = store.runs(RunQuery(limit=1))[0]
        assert newest["run_id"] == f"{4999:032x}"


class TestCounts:
    def test_hourly_rollup_plus_edge_is_exact(self, tmp_path: Path) -> None:
        """Window counts from whole hours plus the partial first hour equal counting
        every run (retries and infrastructure errors never count)."""
        import dataclasses
        import random

        rng = random.Random(7)
        store = SqliteHistory(tmp_path / "h.sqlite3")
        now = 2_000_000.0
        runs = []
        for i in range(3000):
            r = _run(i, now - rng.uniform(0, 50 * 3600))
            kind = rng.random()
            if kind < 0.2:
                r = dataclasses.replace(r, status=Status.FAILURE)
            elif kind < 0.25:
                r = dataclasses.replace(r, status=Status.FAILURE, retried=True)
            elif kind < 0.3:
                r = dataclasses.replace(r, status=Status.ERROR, reason="browser_crash")
            runs.append(r)
        for i in range(0, 3000, 700):  # several batches hit the same hours
            store.write(runs[i : i + 700], [], [])
        windows = {"a": 3600 * 7.3, "b": 3600 * 24.0, "c": 3600 * 49.99}
        got = store.pair_inputs("j", "t", now, windows).counted
        for name, seconds in windows.items():
            inside = [
                r
                for r in runs
                if r.started_at >= now - seconds and not r.retried and r.reason is None
            ]
            passed = sum(1 for r in inside if r.status is Status.SUCCESS)
            assert got[name] == (len(inside), passed), name


class TestListing:
    def test_journey_pages_merge_targets_without_overlap(self, tmp_path: Path) -> None:
        """A journey's runs on two targets come newest first, page after page by cursor,
        each run exactly once."""
        store = SqliteHistory(tmp_path / "h.sqlite3")
        runs = [
            RunResult("j", target, f"{i:032x}", f"{i:032x}", Status.SUCCESS, 1000.0 + i, 0.1)
            for i, target in enumerate(["a", "b", "b", "a", "b"] * 7)
        ]
        store.write(runs[::-1], [], [])  # inserted out of order: ids do not decide
        seen: list[dict[str, object]] = []
        cursor = None
        while True:
            page = store.runs(RunQuery(journey="j", limit=4, before_id=cursor))
            seen += page
            if len(page) < 4:
                break
            cursor = int(page[-1]["id"])  # type: ignore[call-overload]
        assert [r["started_at"] for r in seen] == [1000.0 + i for i in range(34, -1, -1)]
        only_a = store.runs(RunQuery(journey="j", target="a", limit=100))
        assert {r["target"] for r in only_a} == {"a"} and len(only_a) == 14


class TestPairSlots:
    def test_first_and_last_slot_follow_writes_and_retention(self, tmp_path: Path) -> None:
        """A pair's first and last slot (restart gaps, observed time) follow what is
        written, and retention moves the first slot up to the oldest slot left."""
        store = SqliteHistory(tmp_path / "h.sqlite3")
        store.write([], [SlotRecord("j", "t", 100.0 + k, SlotOutcome.PASSED) for k in range(5)], [])
        store.write([], [SlotRecord("j", "t", 200.0, SlotOutcome.PASSED)], [])
        assert store.last_slots() == {("j", "t"): 200.0}
        assert store.pair_inputs("j", "t", 300.0, {"w": 1000.0}).first_slot_at == 100.0
        store.maintain(now=302.0, max_age=200.0, max_bytes=1 << 30)  # cutoff 102
        assert store.pair_inputs("j", "t", 302.0, {"w": 1000.0}).first_slot_at == 102.0
        store.maintain(now=500.0, max_age=200.0, max_bytes=1 << 30)  # cutoff 300
        assert store.last_slots() == {}
