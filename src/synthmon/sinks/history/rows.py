"""The rows the SQLite history stores: runs built and encoded in the writer thread,
inserted by multi-row statements; read back as the API's JSON."""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quote  # what json.dumps uses
from typing import Any

from synthmon.model import RunResult, StepResult
from synthmon.sinks.history.records import is_counted
from synthmon.sinks.latest import page_vitals_json

RUN_COLUMNS = (
    "id, run_id, journey, target, location, trace_id, slot_at, started_at, duration, status, "
    "reason, failed_step, error_type, error, attempt, retried, counted, steps, artifacts, "
    "web_vitals"
)


def step_json(s: StepResult) -> str:
    """One step as the JSON object `steps` stores; built as text for the common step
    (no timings, a finite duration): 3x cheaper than json.dumps of a dict, same bytes."""
    duration = round(s.duration, 6)
    if s.timings or not math.isfinite(duration):
        return json.dumps(
            {
                "name": s.name,
                "status": s.status.value,
                "duration_seconds": duration,
                "soft": s.soft,
                "error": s.error_message,
                **({"timings": dict(s.timings)} if s.timings else {}),
            },
            separators=(",", ":"),
        )
    error = "null" if s.error_message is None else _quote(s.error_message)
    return (
        f'{{"name":{_quote(s.name)},"status":"{s.status.value}",'
        f'"duration_seconds":{duration!r},"soft":{"true" if s.soft else "false"},'
        f'"error":{error}}}'
    )


def run_row(r: RunResult) -> tuple[Any, ...]:
    return (
        r.run_id,
        r.journey,
        r.target,
        r.location,
        r.trace_id,
        r.scheduled_at,
        r.started_at,
        r.duration,
        r.status.value,
        r.reason,
        r.failed_step,
        r.error_type,
        r.error_message,
        r.attempt,
        int(r.retried),
        int(is_counted(r)),
        "[" + ",".join(step_json(s) for s in r.steps) + "]",
        json.dumps(list(r.artifacts)) if r.artifacts else "[]",
        json.dumps([page_vitals_json(p) for p in r.web_vitals], separators=(",", ":"))
        if r.web_vitals
        else None,
    )


def run_json(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "run_id": row[1],
        "journey": row[2],
        "target": row[3],
        "location": row[4],
        "trace_id": row[5],
        "scheduled_at": row[6],
        "started_at": row[7],
        "duration_seconds": row[8],
        "status": row[9],
        "reason": row[10],
        "failed_step": row[11],
        "error_type": row[12],
        "error": row[13],
        "attempt": row[14],
        "retried": bool(row[15]),
        "counted": bool(row[16]),
        "steps": json.loads(row[17]),
        "artifacts": json.loads(row[18]),
        "web_vitals": json.loads(row[19]) if row[19] else [],
    }


@functools.cache
def values_sql(width: int, rows: int) -> str:
    return ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)


def insert(
    db: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """`rows` in a few multi-row statements (64, 32, ... rows: few cached statement
    texts). One sqlite3 step per statement instead of one per row: the writer thread
    lets go of and takes back the GIL a few times per commit, not twice per row, so
    the event loop is interrupted less (docs/benchmarks.md, "History")."""
    i = 0
    while i < len(rows):
        n = 1 << min(len(rows) - i, 64).bit_length() - 1
        chunk = rows[i : i + n]
        db.execute(
            f"{head} VALUES {values_sql(len(chunk[0]), n)}{tail}",
            [v for row in chunk for v in row],
        )
        i += n


def newest(row: Sequence[Any]) -> tuple[float, int]:
    return row[7], row[0]  # started_at, id


# A journey's targets, one index probe each (a loose index scan of runs_counted).
TARGETS_OF_JOURNEY = """
WITH RECURSIVE t(target) AS (
    SELECT (SELECT min(target) FROM runs WHERE journey = ?1)
    UNION ALL
    SELECT (SELECT min(target) FROM runs WHERE journey = ?2 AND target > t.target)
    FROM t WHERE t.target IS NOT NULL
)
SELECT target FROM t WHERE target IS NOT NULL
"""
