"""The history API (JSON, stable, described by /api/openapi.json; docs/history.md):

    GET /api/journeys/{name}                 config summary, recent runs, incidents
    GET /api/journeys/{name}/runs            paginated: target, since, until, result, limit, cursor
    GET /api/runs/{run_id}                   one run in full, with artifact links
    GET /api/incidents                       open, since, journey
    GET /api/slots                           journey, target, outcome, since, limit
    GET /api/openapi.json

Reads run in a thread (`HistorySink.query`), never on the event loop. A bad parameter
gets 400 naming it; history switched off or broken gets 503 saying why.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from pathlib import PurePath
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from synthmon.sinks.history.records import IncidentRecord, SlotOutcome
from synthmon.sinks.history.sink import HistorySink, HistoryUnavailable
from synthmon.sinks.history.store import HistoryStore, RunQuery
from synthmon.web.openapi import spec

RESULTS = ("success", "failure", "timeout", "error")
MAX_LIMIT = 1000


class JourneyViews(Protocol):
    """The status views the API builds on (`web.status.StatusViews`)."""

    def journeys_json(self) -> list[dict[str, Any]]: ...


class BadParameter(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def _time(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadParameter(
            name, f"{raw!r} is not a time: give epoch seconds or RFC 3339 (2026-11-29T10:00:00Z)"
        ) from None


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise BadParameter(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise BadParameter(name, f"{raw!r} is not one of {', '.join(choices)}")
    return raw


def _bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadParameter(name, f"{raw!r} is not true or false")


def _only(request: web.Request, allowed: tuple[str, ...]) -> None:
    for name in request.query:
        if name not in allowed:
            raise BadParameter(name, f"unknown parameter; this endpoint takes {', '.join(allowed)}")


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        version, _, value = text.partition(":")
        row_id = int(value) if version == "v1" else -1
    except (ValueError, binascii.Error, UnicodeDecodeError):
        row_id = -1
    if row_id < 0:
        raise BadParameter(
            "cursor", "not a cursor this API gave out (use next_cursor of the last page)"
        )
    return row_id


def incident_json(i: IncidentRecord, now: float | None = None) -> dict[str, Any]:
    end = i.ended_at
    return {
        "alertname": i.alertname,
        "journey": i.journey,
        "target": i.target,
        "incident": i.incident,
        "severity": i.severity,
        "open": end is None,
        "started_at": i.started_at,
        "detected_at": i.detected_at,
        "ended_at": end,
        "duration_seconds": round(end - i.started_at, 3) if end is not None else None,
        "failed_step": i.failed_step,
        "first_error": i.first_error,
        "run_id": i.run_id,
    }


def artifact_link(artifact: str) -> str:
    """Where the status server serves a stored artifact (`<journey>/<run_id>/<file>`)."""
    if "://" in artifact:
        return artifact
    return "/artifacts/" + "/".join(quote(p) for p in PurePath(artifact).parts[-3:])


def routes(
    history: HistorySink | None,
    views: Callable[[], JourneyViews],
    *,
    trace_url: Callable[[str | None], str | None] = lambda trace_id: None,
) -> Callable[[web.Application], None]:
    """The API routes, for `StatusServer(extra_routes=...)`. `trace_url` links a run
    to its trace ([tracing] ui_url)."""

    async def read(fn: Callable[[HistoryStore], Any]) -> Any:
        if history is None:
            raise HistoryUnavailable("history is switched off ([history] enabled = false)")
        return await history.query(fn)

    def handle(
        fn: Callable[[web.Request], Any],
    ) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return web.json_response(await fn(request))
            except BadParameter as exc:
                return web.json_response(
                    {"error": str(exc), "parameter": exc.parameter}, status=400
                )
            except HistoryUnavailable as exc:
                return web.json_response(
                    {"error": f"history unavailable: {exc} (see /readyz)"}, status=503
                )
            except LookupError as exc:
                return web.json_response({"error": str(exc.args[0])}, status=404)

        return handler

    def known(name: str) -> list[dict[str, Any]]:
        found = [j for j in views().journeys_json() if j["journey"] == name]
        if not found:
            raise LookupError(f"no journey named {name!r} (see /api/journeys)")
        return found

    async def journey(request: web.Request) -> dict[str, Any]:
        _only(request, ())
        name = request.match_info["name"]
        found = known(name)
        recent: list[dict[str, Any]] = []
        incidents: list[dict[str, Any]] = []
        problem = None
        try:
            recent = await read(lambda s: s.runs(RunQuery(journey=name, limit=20)))
            found_incidents = await read(lambda s: s.incidents(None, None, journey=name, limit=100))
            incidents = [incident_json(i) for i in found_incidents]
        except HistoryUnavailable as exc:
            problem = str(exc)
        first = found[0]
        return {
            # `journeys`: one entry per target, the same shape as /api/journeys.
            "journeys": found,
            "journey": {
                k: first[k]
                for k in (
                    "journey",
                    "kind",
                    "severity",
                    "schedule",
                    "timeout_seconds",
                    "tags",
                    "description",
                    "runbook_url",
                    "file",
                )
            },
            "steps": _steps(recent),
            "recent_runs": recent,
            "incidents": incidents,
            "history_error": problem,
        }

    async def runs(request: web.Request) -> dict[str, Any]:
        _only(request, ("target", "since", "until", "result", "limit", "cursor"))
        name = request.match_info["name"]
        since, until = _time(request, "since"), _time(request, "until")
        if since is not None and until is not None and until <= since:
            raise BadParameter("until", "must be later than since")
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        cursor = request.query.get("cursor")
        q = RunQuery(
            journey=name,
            target=request.query.get("target") or None,
            since=since,
            until=until,
            result=_choice(request, "result", RESULTS),
            limit=limit + 1,
            before_id=decode_cursor(cursor) if cursor else None,
        )
        known(name)
        rows: list[dict[str, Any]] = await read(lambda s: s.runs(q))
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "runs": rows,
            "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None,
        }

    async def run(request: web.Request) -> dict[str, Any]:
        _only(request, ())
        run_id = request.match_info["run_id"]
        found = await read(lambda s: s.run(run_id))
        if found is None:
            raise LookupError(
                f"no stored run {run_id!r} (runs older than [history] max_age are gone)"
            )
        found["artifact_links"] = [artifact_link(a) for a in found["artifacts"]]
        found["trace_url"] = trace_url(found.get("trace_id"))
        return {"run": found}

    async def incidents(request: web.Request) -> dict[str, Any]:
        _only(request, ("open", "since", "journey", "limit"))
        open_only, since = _bool(request, "open"), _time(request, "since")
        journey = request.query.get("journey") or None
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        found = await read(lambda s: s.incidents(open_only, since, journey=journey, limit=limit))
        return {"incidents": [incident_json(i) for i in found]}

    async def slots(request: web.Request) -> dict[str, Any]:
        _only(request, ("journey", "target", "outcome", "since", "limit"))
        outcome = _choice(request, "outcome", tuple(o.value for o in SlotOutcome))
        since = _time(request, "since")
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        journey = request.query.get("journey") or None
        target = request.query.get("target") or None
        rows = await read(lambda s: s.slots(journey, target, outcome, since, limit))
        return {"slots": rows}

    described = spec()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(described)

    def install(app: web.Application) -> None:
        app.router.add_get("/api/openapi.json", openapi)
        app.router.add_get("/api/journeys/{name}", handle(journey))
        app.router.add_get("/api/journeys/{name}/runs", handle(runs))
        app.router.add_get("/api/runs/{run_id}", handle(run))
        app.router.add_get("/api/incidents", handle(incidents))
        app.router.add_get("/api/slots", handle(slots))

    return install


def _steps(recent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journey's steps as its latest run went through them."""
    return list(recent[0]["steps"]) if recent else []
