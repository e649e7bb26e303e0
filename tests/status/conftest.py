"""Status page fixtures: the scenario of scripts/screenshots.py (a daemon built as
`synthmon run` builds it, the demo shop, one passing, one degraded, one failing browser
and one paused journey), the webhook config for its alerts, and headless Chromium.

One scenario per test module (module-scoped event loop): building it runs Chromium
and takes seconds, and the tests only read from it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

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
