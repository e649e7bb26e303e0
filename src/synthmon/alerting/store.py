"""SQLite persistence of the alerting side: the outbox, alert states and silences.

One file, `<data_dir>/alerting.sqlite3`. Writes are a few rows per result, so they run
inline on the event loop (WAL, synchronous=NORMAL: a commit is a write, not an fsync);
a crash loses at most the last transactions of the OS buffer, never the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmon.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier TEXT NOT NULL,
    coalesce_key TEXT,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt);
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    notifier: str
    payload: dict[str, Any]
    attempts: int
    created: float


class AlertStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.executescript(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
            )
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"data_dir: cannot open the alerting database {path}: {exc}; "
                "check that data_dir exists and is writable",
                path=str(path),
            ) from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- outbox ------------------------------------------------------------------------

    def enqueue(
        self, notifier: str, payload: Mapping[str, Any], now: float, coalesce_key: str | None
    ) -> None:
        with self._tx() as db:
            if coalesce_key is not None:
                db.execute("DELETE FROM outbox WHERE coalesce_key = ?", (coalesce_key,))
            db.execute(
                "INSERT INTO outbox (notifier, coalesce_key, payload, created, next_attempt) "
                "VALUES (?, ?, ?, ?, ?)",
                (notifier, coalesce_key, json.dumps(payload, sort_keys=True), now, now),
            )

    def due(self, now: float, skip: set[str]) -> list[OutboxEntry]:
        rows = self._db.execute(
            "SELECT id, notifier, payload, attempts, created FROM outbox "
            "WHERE next_attempt <= ? ORDER BY id",
            (now,),
        ).fetchall()
        return [
            OutboxEntry(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows if r[1] not in skip
        ]

    def next_due(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_attempt) FROM outbox").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def delivered(self, entry_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def failed(self, entry_id: int, next_attempt: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
            "WHERE id = ?",
            (next_attempt, error[:1000], entry_id),
        )

    def retry_after(self) -> dict[str, float]:
        """Per notifier, when its earliest failed notification is due again (its later
        ones wait behind it: a resolve must not overtake its trigger after a restart)."""
        rows = self._db.execute(
            "SELECT notifier, MIN(next_attempt) FROM outbox WHERE attempts > 0 GROUP BY notifier"
        )
        return {r[0]: float(r[1]) for r in rows}

    def depth(self) -> dict[str, int]:
        rows = self._db.execute("SELECT notifier, COUNT(*) FROM outbox GROUP BY notifier")
        return {r[0]: r[1] for r in rows}

    # -- alert states ------------------------------------------------------------------

    def load_states(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute("SELECT key, state FROM alert_state").fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def save_state(self, key: str, state: Mapping[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO alert_state (key, state) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
            (key, json.dumps(state, sort_keys=True)),
        )

    def save_states(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Several states in one transaction (one write instead of one per key)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO alert_state (key, state) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                [(k, json.dumps(v, sort_keys=True)) for k, v in states.items()],
            )

    def delete_state(self, key: str) -> None:
        self._db.execute("DELETE FROM alert_state WHERE key = ?", (key,))

    # -- silences ----------------------------------------------------------------------

    def add_silence(
        self,
        matchers: Mapping[str, str],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment) "
            "VALUES (?, ?, ?, ?, ?)",
            (json.dumps(dict(matchers), sort_keys=True), starts_at, ends_at, created_by, comment),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def silences(self, now: float | None = None) -> list[dict[str, Any]]:
        query = "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences"
        args: tuple[Any, ...] = ()
        if now is not None:
            query += " WHERE ends_at > ?"
            args = (now,)
        return [
            {
                "id": r[0],
                "matchers": json.loads(r[1]),
                "starts_at": r[2],
                "ends_at": r[3],
                "created_by": r[4],
                "comment": r[5],
            }
            for r in self._db.execute(query + " ORDER BY id", args)
        ]

    def expire_silence(self, silence_id: int, now: float) -> bool:
        cur = self._db.execute(
            "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
            (now, silence_id, now),
        )
        return cur.rowcount > 0
