"""Shared pieces of the history tests: the OpenAPI validator and a polling helper."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from jsonschema import Draft202012Validator

from synthmon.scheduling.slots import Grid, phase
from synthmon.web.openapi import spec

SPEC = spec()

T = TypeVar("T")

FAST_CRITICAL = """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s",
             alert={"retries": 0, "rechecks": 0, "consecutive": 2, "resolve_passes": 1})
    async def home(ctx: Context) -> None:
        async with ctx.step("open home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200, f"home answered {r.status_code}"
"""

HISTORY_FAST = """
[history]
flush_interval = "100ms"
stats_interval = "200ms"
"""


def check(path: str, response: httpx.Response, method: str = "get") -> Any:
    """Validate `response` against the OpenAPI description of `path`; return its JSON."""
    body = response.json()
    spec = SPEC["paths"][path][method]["responses"][str(response.status_code)]
    schema = {
        **spec["content"]["application/json"]["schema"],
        "components": SPEC["components"],
    }
    Draft202012Validator(schema).validate(body)
    return body


async def eventually(
    fn: Callable[[], Awaitable[T | None]], timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll `fn` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")


def assert_grid_covered(db: Path, key: str, interval: float) -> None:
    """Every slot of the pair's grid, from its first recorded one to its last, is
    recorded exactly once (one outcome per slot; a gap row covers its `count`)."""
    journey, target = key.split("@")
    grid = Grid(interval, phase(key, interval))
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT slot_at, last_slot_at, count FROM slots WHERE journey = ? AND target = ?",
            (journey, target),
        ).fetchall()
    covered: dict[int, int] = {}
    for slot_at, last_at, count in rows:
        a, b = grid.index(slot_at), grid.index(last_at)
        assert abs(grid.at(a) - slot_at) < 0.005, f"slot {slot_at} off the pair's phase grid"
        assert b - a + 1 == count
        for i in range(a, b + 1):
            covered[i] = covered.get(i, 0) + 1
    lo, hi = min(covered), max(covered)
    twice = {i: n for i, n in covered.items() if n != 1}
    lost = [i for i in range(lo, hi + 1) if i not in covered]
    assert not twice and not lost, f"slots counted twice {twice}, lost {lost}"
