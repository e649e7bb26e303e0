"""The history database's schema as numbered migrations (``PRAGMA user_version``).

A daemon started on an older file applies the missing steps in one transaction each;
a file from a newer synthmon (a higher version than it knows) is refused rather than
guessed at. Add a step at the end; never edit one that shipped.
"""

from __future__ import annotations

import sqlite3

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
]


class SchemaTooNew(sqlite3.OperationalError):
    """The file was written by a newer synthmon: reported and left alone (a downgrade
    must not destroy what the newer version wrote)."""


def migrate(db: sqlite3.Connection, migrations: list[str] = MIGRATIONS) -> int:
    """Bring `db` (autocommit mode) up to the newest version; returns it.

    A minimal helper of our own: the shared one for alerting/store.py was not on main
    yet (see the report to the lead)."""
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > len(migrations):
        raise SchemaTooNew(
            f"schema version {current} is newer than this synthmon knows ({len(migrations)})"
        )
    for version, script in enumerate(migrations[current:], start=current + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return len(migrations)
