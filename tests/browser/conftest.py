"""Browser test fixtures: a real headless Chromium (the pool) and runners on it.

Every runner made here is closed at teardown, so no test leaves a Chromium behind.
Chromium's sandbox cannot start as root on CI, so the pools here switch it off
explicitly (`no_sandbox=True`), as a deployment running as root would have to.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import SecretStr

from synthmon.journeys.dsl import Journey
from synthmon.journeys.loader import load_journeys
from synthmon.model import RunRequest, RunResult, Target
from synthmon.runners.browser.artifacts import ArtifactStore
from synthmon.runners.browser.pool import BrowserPool, PoolOptions, _children, _is_chromium
from synthmon.runners.browser.runner import BrowserRunner
from synthmon.runners.http import HttpRunner
from synthmon.safety.accounts import Account
from synthmon.safety.ratelimit import RateLimits

REPO = Path(__file__).resolve().parents[2]
NO_SANDBOX = os.geteuid() == 0
PASSWORD = "shopper1-pass"
# The example journey leases a "shopper" account; runners made here hand it this one.
SHOPPER = Account(
    pool="shopper", username="synthetic+shopper1@shop.example", password=SecretStr(PASSWORD)
)

pytestmark = pytest.mark.browser

MakeRunner = Callable[..., BrowserRunner]


class _ShopperRunner(BrowserRunner):
    """A BrowserRunner that passes the demo shopper when a test gives no account."""

    async def run(self, request: RunRequest) -> RunResult:
        if request.account is None:
            request = dataclasses.replace(request, account=SHOPPER)
        return await super().run(request)


@pytest.fixture
async def make_runner(tmp_path: Path) -> AsyncIterator[MakeRunner]:
    """Build BrowserRunners (pool options and runner options as keywords)."""
    made: list[BrowserRunner] = []

    def make(
        *, pool: dict[str, Any] | None = None, store: ArtifactStore | None = None, **kw: Any
    ) -> BrowserRunner:
        options = PoolOptions(**{"no_sandbox": NO_SANDBOX, **(pool or {})})
        no_limits = RateLimits(()).acquire
        http = HttpRunner(user_agent="synthmon/test", pace=no_limits)
        runner = _ShopperRunner(
            BrowserPool(options),
            pace=kw.pop("pace", no_limits),
            store=store or ArtifactStore(tmp_path / "artifacts"),
            tag_headers=[("X-Synthetic-Monitor", "synthmon")],
            ua_suffix="synthmon/test",
            http_factory=http.client_factory,
            **kw,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.aclose()


def chromium_processes(pids: Sequence[int] | None = None) -> list[psutil.Process]:
    """Live Chromium processes below this one (or among `pids`): what a test expects
    to be gone after a close, a crash or a shutdown."""
    procs = _children() if pids is None else [_proc(p) for p in pids]
    return [p for p in procs if p is not None and p.is_running() and _is_chromium(p)]


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def example_journey(name: str = "browser_checkout", **changes: Any) -> Journey:
    """A journey of the repository's journeys/ folder, optionally with other options."""
    report = load_journeys(REPO / "journeys", known_targets=["demo"])
    found = {j.name: j for j in report.journeys}[name]
    return dataclasses.replace(found, **changes)


def target_for(url: str, **kw: Any) -> Target:
    return Target(name="demo", base_url=url, allowed_hosts=frozenset({"127.0.0.1"}), **kw)
