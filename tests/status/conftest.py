"""Status page fixtures: the scenario of scripts/screenshots.py (a daemon built as
`synthmon run` builds it, the demo shop, one passing, one degraded, one failing browser
and one paused journey), a webhook receiver for its alerts, and headless Chromium.

One scenario per test module (module-scoped event loop): building it runs Chromium
and takes seconds, and the tests only read from it."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, Page, Request

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "synthmon_screenshots", ROOT / "scripts" / "screenshots.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


screenshots = _load_script()
Scenario = Callable[..., AbstractAsyncContextManager[Any]]
scenario: Scenario = screenshots.scenario


def chromium() -> AbstractAsyncContextManager[Browser]:
    return screenshots.chromium()  # type: ignore[no-any-return]


@dataclass
class Webhooks:
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)


async def webhook_receiver() -> AsyncIterator[Webhooks]:
    """A local receiver for the daemon's webhook notifications."""
    hooks = Webhooks()

    async def handle(request: web.Request) -> web.Response:
        hooks.bodies.append(json.loads(await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hooks.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hooks
    finally:
        await runner.cleanup()


def webhook_toml(workdir: Path, url: str) -> str:
    """[alerting] sending every severity to `url` (a secret, so read from a file)."""
    secret = workdir / "webhook_url"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(url, encoding="utf-8")
    return (
        "\n[alerting.webhook]\n"
        f'url = {{ file = "{secret}" }}\n'
        "[alerting.routes]\n"
        'critical = ["webhook"]\nwarning = ["webhook"]\n'
    )


class Requests:
    """Every request a page makes (page.on("request"))."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        self.urls.append(request.url)

    def off_origin(self, origin: str) -> list[str]:
        return [u for u in self.urls if not (u == origin or u.startswith(origin + "/"))]


async def row_states(page: Page) -> list[tuple[str, str]]:
    """(journey, state word) of each row of the status table, top to bottom."""
    rows = page.locator("table.pairs tbody tr")
    out = []
    for i in range(await rows.count()):
        row = rows.nth(i)
        name = (await row.locator("th a").inner_text()).strip()
        state = (await row.locator(".state .word").first.inner_text()).strip()
        out.append((name, state))
    return out
