"""The kill-switch API: ``POST /api/pause``, ``POST /api/resume`` (JSON body:
``journey``, ``tag``, ``target``, ``all``, ``reason``) and ``GET /api/pauses``.
Access control is `web.auth.guard`'s job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog
from aiohttp import web

from synthmon.errors import BadSelectorError

log = structlog.get_logger("synthmon.web")


class PauseApi(Protocol):
    """What the kill-switch routes need from the daemon side."""

    def pause(self, selector: dict[str, str | None], reason: str) -> dict[str, Any]: ...

    def resume(self, selector: dict[str, str | None], everything: bool) -> dict[str, Any]: ...

    def pauses(self) -> dict[str, Any]: ...


async def _selector(request: web.Request) -> tuple[dict[str, str | None], bool, str]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise BadSelectorError("request body must be JSON") from None
    if not isinstance(body, dict):
        raise BadSelectorError("request body must be a JSON object")
    unknown = set(body) - {"journey", "tag", "target", "all", "reason"}
    if unknown:
        raise BadSelectorError(f"unknown fields {sorted(unknown)}")
    selector: dict[str, str | None] = {}
    for key in ("journey", "tag", "target"):
        value = body.get(key)
        if value is not None and not (isinstance(value, str) and value):
            raise BadSelectorError(f"{key} must be a non-empty string")
        selector[key] = value
    everything = body.get("all") is True
    if everything and any(selector.values()):
        raise BadSelectorError("give either all=true or journey/tag/target, not both")
    if not everything and not any(selector.values()):
        raise BadSelectorError("name a journey, tag or target, or send all=true")
    reason = body.get("reason") or ""
    return selector, everything, str(reason)


def routes(api: PauseApi) -> Callable[[web.Application], None]:
    """The kill-switch routes, for `StatusServer(extra_routes=...)`."""

    async def pause(request: web.Request) -> web.Response:
        try:
            selector, _, reason = await _selector(request)
            body = api.pause(selector, reason)
        except BadSelectorError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.warning("paused", remote=request.remote, reason=reason, **selector)
        return web.json_response(body)

    async def resume(request: web.Request) -> web.Response:
        try:
            selector, everything, _ = await _selector(request)
            body = api.resume(selector, everything)
        except BadSelectorError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.warning("resumed", remote=request.remote, all=everything, **selector)
        return web.json_response(body)

    async def pauses(request: web.Request) -> web.Response:
        return web.json_response(api.pauses())

    def install(app: web.Application) -> None:
        app.router.add_post("/api/pause", pause)
        app.router.add_post("/api/resume", resume)
        app.router.add_get("/api/pauses", pauses)

    return install
