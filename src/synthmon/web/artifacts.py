"""`/artifacts/<journey>/<run_id>/<file>`: failure artifacts over HTTP.

Only files directly inside a run folder under the artifacts root are served; every
path part is checked and the resolved path must stay under the root, so `..`,
encoded slashes and symlinks out of the tree get 404. Captured pages are the
target's HTML: they are served with a `sandbox` CSP and `nosniff`, so a snapshot
can never run script on the status server's origin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

_PART = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_TYPES = {
    ".png": "image/png",
    ".zip": "application/zip",
    ".html": "text/plain; charset=utf-8",  # shown as source, never rendered
    ".txt": "text/plain; charset=utf-8",
}


def artifact_routes(root: Path) -> Callable[[web.Application], None]:
    """An `extra_routes` hook for `StatusServer` serving the artifacts under `root`."""

    def resolve(*parts: str) -> Path | None:
        if not all(_PART.match(p) and p not in (".", "..") for p in parts):
            return None
        base = root.resolve()
        path = base.joinpath(*parts).resolve()
        return path if path.is_relative_to(base) else None

    async def run_index(request: web.Request) -> web.Response:
        folder = resolve(request.match_info["journey"], request.match_info["run_id"])
        if folder is None or not folder.is_dir():
            raise web.HTTPNotFound(text="no such run folder\n")
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        return web.json_response({"files": files})

    async def artifact(request: web.Request) -> web.StreamResponse:
        path = resolve(
            request.match_info["journey"], request.match_info["run_id"], request.match_info["name"]
        )
        if path is None or not path.is_file():
            raise web.HTTPNotFound(text="no such artifact\n")
        headers = dict(_HEADERS)
        headers["Content-Type"] = _TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers=headers)

    def install(app: web.Application) -> None:
        app.router.add_get("/artifacts/{journey}/{run_id}/", run_index)
        app.router.add_get("/artifacts/{journey}/{run_id}/{name}", artifact)

    return install
