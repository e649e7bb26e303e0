"""The shop's control and observation side: the fault switch and the request record.

``/_chaos`` (GET/POST) reads and sets the fault switch, ``/_seen`` lists the requests
received, ``/_stats`` counts them per second and ``POST /_reset`` forgets everything.
These routes are never recorded and never faulted: a test must always be able to see
what happened and to switch an outage off again.

Two middlewares sit in front of every other handler: the outer one records the
request, the inner one applies the chaos mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from synthmon_demo import pages
from synthmon_demo.state import CHAOS_MODES, DEFAULT_SLOW_DELAY, ShopState

STATE_KEY: Final = web.AppKey("synthmon_demo.state", ShopState)
# Set when the app starts shutting down, so simulated hangs and slowness end at once
# instead of holding shutdown for aiohttp's two shutdown_timeout waits.
_STOPPING_KEY: Final = web.AppKey("synthmon_demo.stopping", asyncio.Event)

# How often a hanging request checks whether its client is gone. aiohttp does not cancel
# handlers on disconnect by default (handler_cancellation=False), so without this check a
# "hang" would keep a task alive until shutdown.
_HANG_POLL_SECONDS: Final = 0.05


def _state(request: web.Request) -> ShopState:
    return request.app[STATE_KEY]


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


# -- middlewares ----------------------------------------------------------------------


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/_"):
        _state(request).record(
            request.method,
            request.path,
            request.query_string,
            request.headers.get("Host", ""),
            {name.lower(): value for name, value in request.headers.items()},
        )
    return await handler(request)


@web.middleware
async def _chaos(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = _state(request)
    settings = state.chaos
    if not settings.affects(request.path):
        return await handler(request)
    if settings.mode == "error" or (settings.mode == "flaky" and state.flaky_hit()):
        if request.path.startswith("/api/"):
            return web.json_response({"error": "internal error (chaos)"}, status=500)
        return _html(pages.error("Internal error", "internal error (chaos)"), status=500)
    if settings.mode == "flaky":
        return await handler(request)
    if settings.mode == "slow":
        if await _stopped_within(request, settings.delay):
            return _drop_connection(request)
        return await handler(request)
    if settings.mode == "down":
        return _drop_connection(request)
    # "hang": hold the request until the client gives up, the server shuts down or the
    # switch is flipped (then serve normally).
    while state.chaos.affects(request.path) and state.chaos.mode == "hang":
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=503)  # nobody is listening any more
        if await _stopped_within(request, _HANG_POLL_SECONDS):
            return _drop_connection(request)
    return await handler(request)


async def _stopped_within(request: web.Request, seconds: float) -> bool:
    """Wait ``seconds``; True, early, if the app starts shutting down meanwhile."""
    stopping = request.app[_STOPPING_KEY]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
    return stopping.is_set()


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection without a byte of response ("server disconnected")."""
    if request.transport is not None:
        request.transport.abort()
    # Never reaches the client: aiohttp fails to write it to the aborted transport and
    # treats that as a client disconnect (no error log; the access log shows 503).
    return web.Response(status=503)


async def _signal_stopping(app: web.Application) -> None:
    app[_STOPPING_KEY].set()


# -- control and observation (/_*) ----------------------------------------------------


async def _chaos_get(request: web.Request) -> web.Response:
    return web.json_response(_state(request).chaos.as_json())


def _chaos_bad_request(message: str) -> web.HTTPError:
    valid = ", ".join(CHAOS_MODES)
    body = {"error": f"{message}; valid modes: {valid}", "valid_modes": list(CHAOS_MODES)}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


async def _chaos_set(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise _chaos_bad_request("request body must be JSON") from None
    if not isinstance(body, dict):
        raise _chaos_bad_request("request body must be a JSON object")
    mode = body.get("mode")
    delay = body.get("delay", DEFAULT_SLOW_DELAY)
    paths = body.get("paths")
    rate = body.get("rate", 0.0)
    if mode not in CHAOS_MODES:
        raise _chaos_bad_request(f"invalid mode {mode!r}")
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not math.isfinite(delay)
        or delay < 0
    ):
        raise _chaos_bad_request("delay must be a non-negative number of seconds")
    if paths is not None and not (
        isinstance(paths, list) and all(isinstance(p, str) and p.startswith("/") for p in paths)
    ):
        raise _chaos_bad_request('paths must be a list of path prefixes such as "/api"')
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise _chaos_bad_request("rate must be a number from 0 to 1 (share of failed requests)")
    settings = _state(request).set_chaos(mode, delay=float(delay), paths=paths, rate=float(rate))
    return web.json_response(settings.as_json())


async def _seen(request: web.Request) -> web.Response:
    records = _state(request).seen(request.query.get("path"))
    return web.json_response([r.as_json() for r in records])


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(_state(request).stats(request.query.get("path")).as_json())


async def _reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return web.json_response({"status": "reset"})


MIDDLEWARES: Final[tuple[Middleware, ...]] = (_observe, _chaos)


def install(app: web.Application) -> None:
    """Add the ``/_`` routes and shutdown signalling to an app built with MIDDLEWARES."""
    app[_STOPPING_KEY] = asyncio.Event()
    app.on_shutdown.append(_signal_stopping)
    app.router.add_get("/_chaos", _chaos_get)
    app.router.add_post("/_chaos", _chaos_set)
    app.router.add_get("/_seen", _seen)
    app.router.add_get("/_stats", _stats)
    app.router.add_post("/_reset", _reset)
