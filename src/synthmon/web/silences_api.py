"""Silences over HTTP, beside `synthmon silence` (docs/alerting.md):

    GET    /api/silences            active and future silences
    POST   /api/silences            {"journey", "target", "tag", "duration", "comment", "author"}
    DELETE /api/silences/{id}       expire it now

Changing requests pass the same token rules as pause/resume (`web.auth.guard`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from synthmon.alerting.store import AlertStore
from synthmon.config.durations import parse_duration

log = structlog.get_logger("synthmon.web")
FIELDS = ("journey", "target", "tag", "duration", "comment", "author")


def _bad(field: str, message: str) -> web.Response:
    return web.json_response({"error": f"{field}: {message}", "parameter": field}, status=400)


def routes(store: Callable[[], AlertStore]) -> Callable[[web.Application], None]:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"silences": store().silences(time.time())})

    async def create(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except ValueError:
            return _bad("body", "must be a JSON object")
        if not isinstance(body, dict):
            return _bad("body", "must be a JSON object")
        for key in body:
            if key not in FIELDS:
                return _bad(key, f"unknown field; give {', '.join(FIELDS)}")
        for key in FIELDS:
            if key in body and not (isinstance(body[key], str) and body[key]):
                return _bad(key, "must be a non-empty string")
        if not body.get("comment"):
            return _bad("comment", "say why (shown in logs and the silence list)")
        try:
            duration = parse_duration(body.get("duration", "1h"))
        except ValueError as exc:
            return _bad("duration", str(exc))
        matchers = {k: body[k] for k in ("journey", "target", "tag") if body.get(k)}
        now = time.time()
        sid = store().add_silence(
            matchers, now, now + duration, body.get("author", "api"), body["comment"]
        )
        log.warning("silence_added", id=sid, remote=request.remote, **matchers)
        found = [s for s in store().silences(now) if s["id"] == sid]
        return web.json_response({"silence": found[0]}, status=201)

    async def expire(request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit():
            return _bad("id", f"{raw!r} is not a silence id")
        if not store().expire_silence(int(raw), time.time()):
            return web.json_response(
                {"error": f"no active silence {raw} (see GET /api/silences)"}, status=404
            )
        log.warning("silence_expired", id=int(raw), remote=request.remote)
        return web.json_response({"expired": int(raw)})

    def install(app: web.Application) -> None:
        app.router.add_get("/api/silences", listing)
        app.router.add_post("/api/silences", create)
        app.router.add_delete("/api/silences/{id}", expire)

    return install
