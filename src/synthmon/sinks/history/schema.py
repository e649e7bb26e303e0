"""The history database's schema as numbered migrations (``PRAGMA user_version``).

A daemon started on an older file applies the missing steps in one transaction each;
a file from a newer synthmon (a higher version than it knows) is refused rather than
guessed at. Add a step at the end; never edit one that shipped.
"""

from __future__ import annotations

import sqlite3

from synthmon.runtime.sqlite import SchemaTooNewError
from synthmon.runtime.sqlite import migrate as shared_migrate

MIGRATIONS: list[str] = [
    # 1: runs, slots, incidents; run_hours: counted/passing runs per hour (statistics
    # read ~720 of these per pair and window instead of every run).
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        journey TEXT NOT NULL,
        target TEXT NOT NULL,
        location TEXT,
        trace_id TEXT,
        slot_at REAL,
        started_at REAL NOT NULL,
        duration REAL NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        failed_step TEXT,
        error_type TEXT,
        error TEXT,
        attempt INTEGER NOT NULL,
        retried INTEGER NOT NULL,
        counted INTEGER NOT NULL,
        steps TEXT NOT NULL,
        artifacts TEXT NOT NULL
    );
    CREATE INDEX runs_pair ON runs (journey, target, id);
    CREATE INDEX runs_journey ON runs (journey, id);
    CREATE INDEX runs_counted ON runs (journey, target, started_at, counted, status);
    CREATE TABLE slots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        journey TEXT NOT NULL,
        target TEXT NOT NULL,
        slot_at REAL NOT NULL,
        last_slot_at REAL NOT NULL,
        count INTEGER NOT NULL,
        span REAL NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        run_id TEXT,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX slots_pair ON slots (journey, target, slot_at);
    CREATE INDEX slots_unusual ON slots (outcome, slot_at) WHERE outcome != 'passed';
    CREATE INDEX slots_missed ON slots (journey, target, last_slot_at) WHERE outcome = 'missed';
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alertname TEXT NOT NULL,
        journey TEXT NOT NULL,
        target TEXT NOT NULL,
        incident INTEGER NOT NULL,
        severity TEXT NOT NULL,
        started_at REAL NOT NULL,
        detected_at REAL NOT NULL,
        ended_at REAL,
        failed_step TEXT,
        first_error TEXT,
        run_id TEXT,
        UNIQUE (alertname, journey, target, incident)
    );
    CREATE INDEX incidents_pair ON incidents (journey, target, started_at);
    CREATE TABLE run_hours (
        journey TEXT NOT NULL,
        target TEXT NOT NULL,
        hour INTEGER NOT NULL,
        counted INTEGER NOT NULL,
        passed INTEGER NOT NULL,
        PRIMARY KEY (journey, target, hour)
    ) WITHOUT ROWID;
    """,
    # 2: Web Vitals per document of browser runs (JSON list; NULL: none measured).
    """
    ALTER TABLE runs ADD COLUMN web_vitals TEXT;
    """,
    # 3: fewer indexes a run's insert must update (docs/benchmarks.md, "History"). A
    # commit writes every page it dirtied, and each index keyed by journey puts every
    # run of a batch on another page: runs_pair and runs_journey go (runs_counted,
    # journey/target/started_at, serves the run listings too), slots_pair gives way to
    # pair_slots (a pair's first and last slot, one row per pair) and a time index.
    """
    CREATE TABLE pair_slots (
        journey TEXT NOT NULL,
        target TEXT NOT NULL,
        first_slot_at REAL NOT NULL,
        last_slot_at REAL NOT NULL,
        PRIMARY KEY (journey, target)
    ) WITHOUT ROWID;
    INSERT INTO pair_slots
        SELECT journey, target, min(slot_at), max(last_slot_at) FROM slots GROUP BY journey, target;
    DROP INDEX slots_pair;
    CREATE INDEX slots_time ON slots (slot_at);
    DROP INDEX runs_pair;
    DROP INDEX runs_journey;
    """,
]


class SchemaTooNew(sqlite3.OperationalError):
    """The file was written by a newer synthmon: reported and left alone (a downgrade
    must not destroy what the newer version wrote)."""


def migrate(db: sqlite3.Connection, migrations: list[str] = MIGRATIONS) -> int:
    """Bring `db` (autocommit mode) up to the newest version with the shared
    `runtime.sqlite.migrate`; returns it. A newer file is `SchemaTooNew` (an
    OperationalError the store reports and leaves alone, unlike a corrupt file)."""
    try:
        shared_migrate(db, migrations, name="history")
    except SchemaTooNewError as exc:
        raise SchemaTooNew(str(exc)) from None
    return len(migrations)
