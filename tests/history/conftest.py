"""Shared pieces of the history tests: the OpenAPI validator and a polling helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from jsonschema import Draft202012Validator

from synthmon.web.openapi import SPEC

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
