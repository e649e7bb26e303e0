"""Real components for the alerting tests: an Alertmanager binary on a free loopback
port and a local HTTP receiver standing in for PagerDuty, Slack and webhooks (and
receiving Alertmanager's own webhook notifications)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.loopback import free_port


def never_paused(journey: Any, target: str) -> bool:
    """`AlertEngine(is_paused=...)` for tests without a kill switch."""
    return False


AM_BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@dataclass
class Receiver:
    """Records every POST body per path; `fail` makes it answer 503 to all."""

    url: str = ""
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    fail: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self, path: str) -> list[Any]:
        return [json.loads(b) for b in self.bodies.get(path, [])]

    async def wait_for(self, path: str, n: int, within: float = 10.0) -> list[Any]:
        async with asyncio.timeout(within):
            while len(self.bodies.get(path, [])) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.json(path)


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    """A local HTTP receiver on a free loopback port. Its URLs (secrets in the config)
    are in TEST_WEBHOOK_URL and TEST_SLACK_URL; TEST_PD_KEY is a PagerDuty key."""
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if rec.fail:
            return web.Response(status=503, text="receiver down (test)")
        rec.bodies.setdefault(request.path, []).append(body)
        rec.changed.set()
        return web.json_response({"status": "success"}, status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("TEST_WEBHOOK_URL", f"{rec.url}/webhook")
    monkeypatch.setenv("TEST_SLACK_URL", f"{rec.url}/slack")
    monkeypatch.setenv("TEST_PD_KEY", "test-routing-key")
    try:
        yield rec
    finally:
        await runner.cleanup()


class Alertmanager:
    """A real Alertmanager process; `stop()`/`start()` simulate an outage."""

    def __init__(self, workdir: Path, webhook_url: str) -> None:
        assert AM_BINARY, "prometheus-alertmanager is not installed (make system-deps)"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "alertmanager.yml"
        # Notifications to our receiver as fast as Alertmanager allows, so tests can
        # count them: one per firing and one per resolve.
        self.config.write_text(
            textwrap.dedent(f"""
            route:
              receiver: test
              group_by: [alertname, journey, target]
              group_wait: 0s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: test
                webhook_configs:
                  - url: {webhook_url}/am
                    send_resolved: true
            """)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        # Popen returns at once; the readiness wait below is what takes time.
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            [
                str(AM_BINARY),
                f"--config.file={self.config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "am.log").open("ab"),
        )
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError((self.workdir / "am.log").read_text())
                await asyncio.sleep(0.05)
        raise RuntimeError("alertmanager did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    async def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Active alerts (Alertmanager hides resolved ones), optionally by label."""
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{self.url}/api/v2/alerts")
            r.raise_for_status()
        return [a for a in r.json() if all(a["labels"].get(k) == v for k, v in filters.items())]


@pytest.fixture
async def alertmanager(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Alertmanager]:
    """A real Alertmanager on a free loopback port, notifying `receiver` at /am."""
    am = Alertmanager(tmp_path / "am", receiver.url)
    await am.start()
    try:
        yield am
    finally:
        am.stop()
