"""Versioned SQLite schemas: `PRAGMA user_version` says which migrations a file has.

Each database declares its migrations as an ordered list of SQL scripts; migration
`n` (1-based) runs once, in one transaction with the version bump, when the file's
`user_version` is below `n`. A file from a newer synthmon (version above the list) is
refused rather than written by code that does not know its schema. Reuse this for
every SQLite file (the alerting store, a run history, ...)::

    MIGRATIONS = ["CREATE TABLE ...;", "ALTER TABLE ... ADD COLUMN ...;"]
    migrate(db, MIGRATIONS, name="history")
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


class SchemaTooNewError(sqlite3.DatabaseError):
    """The file was written by a newer synthmon whose schema this one does not know."""


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, migrations: Sequence[str], *, name: str) -> int:
    """Bring `db` to `len(migrations)`; returns the version it had before.
    `db` must be in autocommit mode (`isolation_level=None`)."""
    before = schema_version(db)
    if before > len(migrations):
        raise SchemaTooNewError(
            f"the {name} database has schema version {before}, this synthmon knows "
            f"{len(migrations)}: run the newer synthmon, or move the file away to start over"
        )
    for version, script in enumerate(migrations[before:], start=before + 1):
        # executescript() commits first; BEGIN inside the script keeps the migration
        # and its version bump one transaction.
        body = script.strip().rstrip(";")  # a script's last statement may lack its ";"
        db.executescript(f"BEGIN IMMEDIATE;\n{body};\nPRAGMA user_version = {version};\nCOMMIT;")
    return before
