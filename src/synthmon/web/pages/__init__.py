"""The HTML status pages (docs/status-page.md): `/`, `/journeys/{name}?target=` and
their CSS/JS/icon under `/static/`, all served by synthmon itself.

Server-rendered and complete without JavaScript; `static/status.js` only refreshes
`<main>` in place. A Content-Security-Policy of `'self'` makes the browser refuse
any request off the daemon's origin, should a page ever try one. Read-only; access
is `web.auth`'s (public mode opens only these pages, docs/status-page.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources

from aiohttp import web

from synthmon.sinks.history.sink import HistoryUnavailable
from synthmon.web.pages import journey, overview
from synthmon.web.pages.html import Memo, esc, frame
from synthmon.web.pages.rows import FILTERS, build_row, select, visible
from synthmon.web.status import DaemonState

CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("synthmon.web") / "static"
    return {
        f.name: (f.read_bytes(), TYPES[suffix])
        for f in folder.iterdir()
        if (suffix := "." + f.name.rpartition(".")[2]) in TYPES
    }


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, content_type="text/html", status=status, headers=HEADERS)
    response.enable_compression()
    return response


def routes(daemon: DaemonState) -> Callable[[web.Application], None]:
    """The page routes, for `StatusServer(extra_routes=...)`."""
    static = _static_files()
    # Rendered rows and uptime cells, reused while their inputs are unchanged. 90 days
    # of 500 pairs is 45,000 cells (far fewer distinct ones).
    memo = (Memo(), Memo(limit=200_000))

    def not_found(message: str) -> web.Response:
        cfg = daemon.settings.status_page
        body = f'<h1>Not found</h1><p>{esc(message)}</p><p><a href="/">All journeys</a></p>'
        return _html(frame("Not found", body, site=cfg.title, refresh=0), status=404)

    async def index(request: web.Request) -> web.Response:
        filters = {k: v for k, v in request.query.items() if k in FILTERS}
        sel = select(daemon, filters)
        return _html(overview.render(daemon, sel, memo))

    async def journey_page(request: web.Request) -> web.Response:
        cfg = daemon.settings.status_page
        name = request.match_info["name"]
        pairs = [
            (j, t)
            for j, t in daemon.pairs.values()
            if j.name == name and visible(j, cfg.public, cfg.public_tag)
        ]
        if not pairs:
            return not_found(f"No journey named {name!r} is loaded.")
        targets = sorted(t.name for _, t in pairs)
        wanted = request.query.get("target") or targets[0]
        found = [(j, t) for j, t in pairs if t.name == wanted]
        if not found:
            return not_found(
                f"Journey {name!r} does not run against target {wanted!r}; "
                f"its targets: {', '.join(targets)}."
            )
        now = time.time()
        row = build_row(daemon, *found[0], now)
        data = journey.History()
        if daemon.history is not None:
            try:
                data = await daemon.history.query(
                    lambda s: journey.load(
                        s,
                        name,
                        wanted,
                        row.since,
                        now,
                        logs=not cfg.public,
                        timeout=row.journey.timeout,
                    )
                )
            except HistoryUnavailable as exc:
                data.problem = str(exc)
        else:
            data.problem = "history is switched off ([history] enabled = false)"
        return _html(journey.render(daemon, row, data, targets, now))

    async def static_file(request: web.Request) -> web.Response:
        found = static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="no such file\n")
        body, content_type = found
        return web.Response(
            body=body,
            content_type=content_type,
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    def install(app: web.Application) -> None:
        app.router.add_get("/", index)
        app.router.add_get("/journeys/{name}", journey_page)
        app.router.add_get("/static/{name}", static_file)

    return install
