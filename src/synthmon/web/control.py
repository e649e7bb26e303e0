"""The kill-switch API: ``POST /api/pause``, ``POST /api/resume`` (JSON body:
``journey``, ``tag``, ``target``, ``all``, ``reason``) and ``GET /api/pauses``.
Access control is `web.auth.guard`'s job.

Bodies are parsed within bounds (docs/safety.md): at most `MAX_BODY` bytes, a flat
JSON object (nesting is refused before `json.loads` sees it, so a deeply nested body
cannot reach Python's recursion limit), names up to `MAX_NAME` and a reason up to
`MAX_REASON` characters. Anything else is a 400/413 with a message saying which limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from aiohttp import web

from synthmon.errors import BadSelectorError

log = structlog.get_logger("synthmon.web")

MAX_BODY = 16 * 1024  # bytes; a selector and a reason fit many times over
MAX_NAME = 200  # characters of journey, tag and target
MAX_REASON = 1000  # characters of a pause reason (it is stored and served)
MAX_DEPTH = 1  # the body is one flat object


class BodyTooLargeError(BadSelectorError):
    """The request body is larger than the API accepts (answered 413)."""


def _depth(text: str) -> int:
    """The deepest nesting of objects/arrays in `text`, outside strings: a linear scan,
    so a 100,000-level body is refused without recursing."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLargeError(
            f"request body is {request.content_length} bytes; the limit is {MAX_BODY}"
        )
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BodyTooLargeError(f"request body is over the limit of {MAX_BODY} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSelectorError("request body must be UTF-8 JSON") from None
    if _depth(text) > MAX_DEPTH:
        raise BadSelectorError(
            "request body must be one flat JSON object (no nested objects or arrays)"
        )
    try:
        return json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        raise BadSelectorError("request body must be JSON") from None


class PauseApi(Protocol):
    """What the kill-switch routes need from the daemon side."""

    def pause(self, selector: dict[str, str | None], reason: str) -> dict[str, Any]: ...

    def resume(self, selector: dict[str, str | None], everything: bool) -> dict[str, Any]: ...

    def pauses(self) -> dict[str, Any]: ...


async def _selector(request: web.Request) -> tuple[dict[str, str | None], bool, str]:
    body = await _body(request)
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
        if value is not None and len(value) > MAX_NAME:
            raise BadSelectorError(f"{key} is {len(value)} characters; the limit is {MAX_NAME}")
        selector[key] = value
    everything = body.get("all") is True
    if everything and any(selector.values()):
        raise BadSelectorError("give either all=true or journey/tag/target, not both")
    if not everything and not any(selector.values()):
        raise BadSelectorError("name a journey, tag or target, or send all=true")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise BadSelectorError("reason must be a string")
    if len(reason) > MAX_REASON:
        raise BadSelectorError(
            f"reason is {len(reason)} characters; the limit is {MAX_REASON} "
            "(link a ticket for the details)"
        )
    return selector, everything, reason


def _refused(request: web.Request, exc: BadSelectorError) -> web.Response:
    status = 413 if isinstance(exc, BodyTooLargeError) else 400
    log.warning("api_request_invalid", path=request.path, remote=request.remote, error=str(exc))
    return web.json_response({"error": str(exc)}, status=status)


def routes(api: PauseApi) -> Callable[[web.Application], None]:
    """The kill-switch routes, for `StatusServer(extra_routes=...)`."""

    async def pause(request: web.Request) -> web.Response:
        try:
            selector, _, reason = await _selector(request)
            body = api.pause(selector, reason)
        except BadSelectorError as exc:
            return _refused(request, exc)
        log.warning("paused", remote=request.remote, reason=reason, **selector)
        return web.json_response(body)

    async def resume(request: web.Request) -> web.Response:
        try:
            selector, everything, _ = await _selector(request)
            body = api.resume(selector, everything)
        except BadSelectorError as exc:
            return _refused(request, exc)
        log.warning("resumed", remote=request.remote, all=everything, **selector)
        return web.json_response(body)

    async def pauses(request: web.Request) -> web.Response:
        return web.json_response(api.pauses())

    def install(app: web.Application) -> None:
        app.router.add_post("/api/pause", pause)
        app.router.add_post("/api/resume", resume)
        app.router.add_get("/api/pauses", pauses)

    return install
