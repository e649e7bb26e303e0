"""Where history lives: the `HistoryStore` interface and its SQLite implementation.

The sink (`sink.HistorySink`) only talks to the interface, so a second backend
(Postgres, say) is a new class here, not a change to the sink. SQLite: one file
`<data_dir>/history.sqlite3`, WAL (readers never wait for the writer),
synchronous=NORMAL. Only the sink's writer thread writes; the API reads through a
second connection.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from synthmon.model import RunResult, Status
from synthmon.sinks.history.overview import OverviewQueries
from synthmon.sinks.history.records import IncidentRecord, SlotOutcome, SlotRecord, is_counted
from synthmon.sinks.history.rows import (
    RUN_COLUMNS,
    TARGETS_OF_JOURNEY,
    insert,
    newest,
    run_json,
    run_row,
)
from synthmon.sinks.history.schema import migrate

DB_NAME = "history.sqlite3"


@dataclass(frozen=True, slots=True)
class RunQuery:
    journey: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    result: str | None = None
    limit: int = 100
    before_id: int | None = None  # the cursor: rows older than this one


@dataclass(frozen=True, slots=True)
class PairInputs:
    """What the statistics of one pair are computed from."""

    counted: dict[str, tuple[int, int]]  # window -> (counted runs, passing runs)
    first_slot_at: float | None
    missed: list[tuple[float, float]]  # (first missed slot, seconds covered)
    incidents: list[IncidentRecord]


class HistoryStore(OverviewQueries, Protocol):
    """A history backend. Writes come from one thread; reads may come from others."""

    def write(
        self,
        runs: Sequence[RunResult],
        slots: Sequence[SlotRecord],
        incidents: Sequence[IncidentRecord],
    ) -> None: ...

    def last_slots(self) -> dict[tuple[str, str], float]: ...

    def runs(self, q: RunQuery) -> list[dict[str, Any]]: ...

    def run(self, run_id: str) -> dict[str, Any] | None: ...

    def slots(
        self,
        journey: str | None,
        target: str | None,
        outcome: str | None,
        since: float | None,
        limit: int,
    ) -> list[dict[str, Any]]: ...

    def incidents(
        self,
        open_only: bool | None,
        since: float | None,
        journey: str | None = None,
        limit: int = 1000,
    ) -> list[IncidentRecord]: ...

    def pair_inputs(
        self, journey: str, target: str, now: float, windows: dict[str, float]
    ) -> PairInputs: ...

    def maintain(self, now: float, max_age: float, max_bytes: int) -> dict[str, int]: ...

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=2000")
    return db


def _incident(row: Sequence[Any]) -> IncidentRecord:
    return IncidentRecord(*row)


INCIDENT_COLUMNS = (
    "alertname, journey, target, incident, severity, started_at, detected_at, ended_at, "
    "failed_step, first_error, run_id"
)


class SqliteHistory:
    """`HistoryStore` in one SQLite file. Raises sqlite3/OS errors: the sink reports them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._w = _connect(path)
        try:
            self._w.execute("PRAGMA journal_mode=WAL")
            self._w.execute("PRAGMA synchronous=NORMAL")
            # Touch the file: a truncated or foreign file fails here, not at the first run.
            self._w.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if self._w.execute("PRAGMA user_version").fetchone()[0] == 0:
                # Only possible before the first table: lets retention give pages back
                # with a cheap incremental vacuum instead of rewriting the whole file.
                self._w.execute("PRAGMA auto_vacuum = INCREMENTAL")
            migrate(self._w)
        except BaseException:
            self._w.close()
            raise
        self._r = _connect(path)
        self._r_lock = threading.Lock()

    def close(self) -> None:
        self._w.close()
        self._r.close()

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        with self._r_lock:
            return self._r.execute(sql, tuple(args)).fetchall()

    # -- writes (writer thread) ----------------------------------------------------------

    def write(
        self,
        runs: Sequence[RunResult],
        slots: Sequence[SlotRecord],
        incidents: Sequence[IncidentRecord],
    ) -> None:
        # Rows are built before BEGIN: the write lock is held only for the inserts.
        run_rows = [run_row(r) for r in runs]
        hours: dict[tuple[str, str, int], list[int]] = {}
        for r in runs:
            if is_counted(r):
                cell = hours.setdefault((r.journey, r.target, int(r.started_at // 3600)), [0, 0])
                cell[0] += 1
                cell[1] += r.status is Status.SUCCESS
        slot_rows = []
        pairs: dict[tuple[str, str], list[float]] = {}
        for sl in slots:
            last = sl.last_slot_at or sl.slot_at
            slot_rows.append(
                (
                    sl.journey,
                    sl.target,
                    sl.slot_at,
                    last,
                    sl.count,
                    sl.span,
                    sl.outcome.value,
                    sl.reason,
                    sl.run_id,
                    sl.recorded_at,
                )
            )
            span = pairs.get((sl.journey, sl.target))
            if span is None:
                pairs[(sl.journey, sl.target)] = [sl.slot_at, last]
            else:
                span[0] = min(span[0], sl.slot_at)
                span[1] = max(span[1], last)
        db = self._w
        db.execute("BEGIN IMMEDIATE")
        try:
            insert(db, f"INSERT OR IGNORE INTO runs ({RUN_COLUMNS.removeprefix('id, ')})", run_rows)
            insert(
                db,
                "INSERT INTO run_hours (journey, target, hour, counted, passed)",
                [(*k, v[0], v[1]) for k, v in hours.items()],
                " ON CONFLICT (journey, target, hour) DO UPDATE SET "
                "counted = counted + excluded.counted, passed = passed + excluded.passed",
            )
            insert(
                db,
                "INSERT INTO slots (journey, target, slot_at, last_slot_at, count, span, "
                "outcome, reason, run_id, recorded_at)",
                slot_rows,
            )
            insert(
                db,
                "INSERT INTO pair_slots (journey, target, first_slot_at, last_slot_at)",
                [(*k, v[0], v[1]) for k, v in pairs.items()],
                " ON CONFLICT (journey, target) DO UPDATE SET "
                "first_slot_at = min(first_slot_at, excluded.first_slot_at), "
                "last_slot_at = max(last_slot_at, excluded.last_slot_at)",
            )
            for i in incidents:
                if i.ended_at is None:
                    db.execute(
                        f"INSERT OR IGNORE INTO incidents ({INCIDENT_COLUMNS}) "  # noqa: S608 - constants
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            i.alertname,
                            i.journey,
                            i.target,
                            i.incident,
                            i.severity,
                            i.started_at,
                            i.detected_at,
                            None,
                            i.failed_step,
                            i.first_error,
                            i.run_id,
                        ),
                    )
                else:
                    db.execute(
                        "UPDATE incidents SET ended_at = ? WHERE alertname = ? AND journey = ? "
                        "AND target = ? AND incident = ? AND ended_at IS NULL",
                        (i.ended_at, i.alertname, i.journey, i.target, i.incident),
                    )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def maintain(self, now: float, max_age: float, max_bytes: int) -> dict[str, int]:
        """Delete what is older than `max_age`, then the oldest runs while the file is
        larger than `max_bytes`; give freed pages back (incremental vacuum; a full
        VACUUM only when over the size cap). Returns rows deleted."""
        db = self._w
        cutoff = now - max_age
        db.execute("BEGIN IMMEDIATE")
        try:
            deleted = {
                "runs": db.execute("DELETE FROM runs WHERE started_at < ?", (cutoff,)).rowcount,
                # slot_at <= last_slot_at: the condition on slot_at lets slots_time help.
                "slots": db.execute(
                    "DELETE FROM slots WHERE slot_at < ? AND last_slot_at < ?", (cutoff, cutoff)
                ).rowcount,
                "incidents": db.execute(
                    "DELETE FROM incidents WHERE ended_at IS NOT NULL AND ended_at < ?", (cutoff,)
                ).rowcount,
            }
            db.execute("DELETE FROM run_hours WHERE hour < ?", (int(cutoff // 3600),))
            # A pair's first slot moves up to its oldest slot left: a gap that straddles
            # the cutoff (the only rows left before it), else its first slot after it.
            db.execute("DELETE FROM pair_slots WHERE last_slot_at < ?", (cutoff,))
            db.execute(
                "UPDATE pair_slots SET first_slot_at = coalesce("
                "(SELECT min(s.slot_at) FROM slots s WHERE s.slot_at < :c "
                "AND s.journey = pair_slots.journey AND s.target = pair_slots.target), "
                "(SELECT s.slot_at FROM slots s WHERE s.slot_at >= :c "
                "AND s.journey = pair_slots.journey AND s.target = pair_slots.target "
                "ORDER BY s.slot_at LIMIT 1), last_slot_at) WHERE first_slot_at < :c",
                {"c": cutoff},
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        for _ in range(20):
            if self.size_bytes() <= max_bytes:
                break
            total = db.execute("SELECT count(*) FROM runs").fetchone()[0]
            if not total:
                break
            # Oldest tenth of the runs at a time, then VACUUM to give the space back.
            n = max(total // 10, 1)
            deleted["runs"] += db.execute(
                "DELETE FROM runs WHERE id IN (SELECT id FROM runs ORDER BY id LIMIT ?)", (n,)
            ).rowcount
            db.execute("VACUUM")
        if any(deleted.values()):
            db.execute("PRAGMA incremental_vacuum")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def size_bytes(self) -> int:
        page_count = self._w.execute("PRAGMA page_count").fetchone()[0]
        page_size = self._w.execute("PRAGMA page_size").fetchone()[0]
        return int(page_count) * int(page_size)

    # -- reads -----------------------------------------------------------------------------

    def last_slots(self) -> dict[tuple[str, str], float]:
        rows = self._read("SELECT journey, target, last_slot_at FROM pair_slots")
        return {(r[0], r[1]): float(r[2]) for r in rows}

    def runs(self, q: RunQuery) -> list[dict[str, Any]]:
        """Newest first (start time, then id). A journey's runs are read target by
        target from runs_counted (journey, target, started_at) and merged: the one
        index a run's insert updates for its pair (schema migration 2)."""
        where: list[str] = []
        args: list[Any] = []
        if q.result is not None:
            where.append("status = ?")
            args.append(q.result)
        if q.since is not None:
            where.append("started_at >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("started_at < ?")
            args.append(q.until)
        if q.before_id is not None:
            # The cursor is the last row's id; rows after it in this order come before
            # its start time, or at the same start time with a smaller id.
            found = self._read("SELECT started_at FROM runs WHERE id = ?", (q.before_id,))
            if not found:
                return []  # deleted by retention, and everything older with it
            where.append("started_at <= ? AND (started_at < ? OR id < ?)")
            args += [found[0][0], found[0][0], q.before_id]
        order = " ORDER BY started_at DESC, id DESC LIMIT ?"
        if q.journey is None:
            targets: list[str | None] = [q.target]
        elif q.target is not None:
            targets = [q.target]
        else:
            targets = [r[0] for r in self._read(TARGETS_OF_JOURNEY, (q.journey, q.journey))]
        pages = []
        for target in targets:
            clauses, values = list(where), list(args)
            for column, value in (("journey", q.journey), ("target", target)):
                if value is not None:
                    clauses.insert(0, f"{column} = ?")
                    values.insert(0, value)
            sql = f"SELECT {RUN_COLUMNS} FROM runs"  # noqa: S608 - constants; values are bound
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            pages.append(self._read(sql + order, [*values, q.limit]))
        rows = pages[0] if len(pages) == 1 else heapq.merge(*pages, key=newest, reverse=True)
        return [run_json(r) for r, _ in zip(rows, range(q.limit), strict=False)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"  # noqa: S608 - constants
        rows = self._read(sql, (run_id,))
        return run_json(rows[0]) if rows else None

    def slots(
        self,
        journey: str | None,
        target: str | None,
        outcome: str | None,
        since: float | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("journey", journey), ("target", target)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        index = ""
        if outcome is not None:
            # A literal, not a bound value: only then can the partial indexes
            # (slots_unusual, slots_missed) serve it. Checked against the enum.
            where.append(f"outcome = '{SlotOutcome(outcome).value}'")
            if outcome == SlotOutcome.MISSED and journey is not None:
                index = " INDEXED BY slots_missed"
            elif outcome != SlotOutcome.PASSED:
                where.append("outcome != 'passed'")  # the partial index's own condition
                index = " INDEXED BY slots_unusual"
        if since is not None:
            where.append("last_slot_at >= ?")
            args.append(since)
        sql = (
            "SELECT journey, target, slot_at, last_slot_at, count, span, outcome, reason, "  # noqa: S608 - constants and an enum value
            "run_id FROM slots" + index
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY slot_at DESC LIMIT ?"
        args.append(limit)
        keys = (
            "journey",
            "target",
            "slot_at",
            "last_slot_at",
            "count",
            "span_seconds",
            "outcome",
            "reason",
            "run_id",
        )
        return [dict(zip(keys, r, strict=True)) for r in self._read(sql, args)]

    def incidents(
        self,
        open_only: bool | None,
        since: float | None,
        journey: str | None = None,
        limit: int = 1000,
    ) -> list[IncidentRecord]:
        where: list[str] = []
        args: list[Any] = []
        if open_only is True:
            where.append("ended_at IS NULL")
        elif open_only is False:
            where.append("ended_at IS NOT NULL")
        if since is not None:
            where.append("(ended_at IS NULL OR ended_at >= ?)")
            args.append(since)
        if journey is not None:
            where.append("journey = ?")
            args.append(journey)
        sql = f"SELECT {INCIDENT_COLUMNS} FROM incidents"  # noqa: S608 - constants
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC LIMIT ?"
        args.append(limit)
        return [_incident(r) for r in self._read(sql, args)]

    def _counted(self, journey: str, target: str, since: float) -> tuple[int, int]:
        """(counted, passing) runs since `since`: whole hours from `run_hours`, the
        partial first hour from the runs themselves (exact, and cheap)."""
        hour = int(since // 3600)
        whole = self._read(
            "SELECT coalesce(sum(counted), 0), coalesce(sum(passed), 0) FROM run_hours "
            "WHERE journey = ? AND target = ? AND hour > ?",
            (journey, target, hour),
        )[0]
        edge = self._read(
            "SELECT count(*), coalesce(sum(status = 'success'), 0) FROM runs "
            "WHERE journey = ? AND target = ? AND started_at >= ? AND started_at < ? "
            "AND counted = 1",
            (journey, target, since, (hour + 1) * 3600.0),
        )[0]
        return int(whole[0]) + int(edge[0]), int(whole[1]) + int(edge[1])

    def pair_inputs(
        self, journey: str, target: str, now: float, windows: dict[str, float]
    ) -> PairInputs:
        counted = {
            name: self._counted(journey, target, now - seconds) for name, seconds in windows.items()
        }
        found = self._read(
            "SELECT first_slot_at FROM pair_slots WHERE journey = ? AND target = ?",
            (journey, target),
        )
        first = found[0][0] if found else None
        horizon = now - max(windows.values())
        missed = [
            (float(r[0]), float(r[1]))
            for r in self._read(
                "SELECT slot_at, span FROM slots INDEXED BY slots_missed WHERE journey = ? "
                "AND target = ? AND outcome = 'missed' AND last_slot_at >= ?",
                (journey, target, horizon),
            )
        ]
        incidents = [
            _incident(r)
            for r in self._read(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE journey = ? AND target = ? "  # noqa: S608
                "AND alertname = 'SyntheticJourneyFailed' ORDER BY started_at",
                (journey, target),
            )
        ]
        return PairInputs(counted, float(first) if first is not None else None, missed, incidents)

    # -- the status page's overview (sinks/history/overview.py) --------------------------

    def recent_points(
        self, journey: str, target: str, since: float, limit: int
    ) -> list[tuple[float, float, bool]]:
        """The pair's newest counted runs since `since` (oldest first), on the
        `runs_counted` index: (started_at, duration, passed)."""
        rows = self._read(
            "SELECT started_at, duration, status FROM runs WHERE journey = ? AND target = ? "
            "AND started_at >= ? AND counted = 1 ORDER BY started_at DESC LIMIT ?",
            (journey, target, since, limit),
        )
        return [(float(r[0]), float(r[1]), r[2] == "success") for r in reversed(rows)]

    def daily_counts(self, journey: str, target: str, since_day: int) -> list[tuple[int, int, int]]:
        """(UTC day, counted, passed) per day from `since_day` on, from `run_hours`."""
        rows = self._read(
            "SELECT hour / 24, sum(counted), sum(passed) FROM run_hours WHERE journey = ? "
            "AND target = ? AND hour >= ? GROUP BY hour / 24",
            (journey, target, since_day * 24),
        )
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]
