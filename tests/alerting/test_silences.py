"""Maintenance windows, runtime silences (the `synthmon silence` CLI) and the
heartbeat: what reaches receivers while work on a target is announced."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from synthmon import Context, journey
from synthmon.alerting.engine import AlertEngine
from synthmon.cli import main as cli_main
from synthmon.config.alerting import AlertingConfig
from synthmon.model import RunResult, Status
from tests.alerting.conftest import Alertmanager, Receiver, never_paused


@journey(name="home", severity="critical", interval="30s", tags=["shop"])
async def home(ctx: Context) -> None:
    """Never run here: the tests feed results."""


def result(n: int, status: Status) -> RunResult:
    return RunResult(
        journey="home",
        target="prod",
        run_id=f"run-{n}",
        trace_id=f"trace-{n}",
        status=status,
        started_at=time.time(),
        duration=0.1,
        failed_step=None if status is Status.SUCCESS else "home",
    )


async def outage(engine: AlertEngine, first: int = 1) -> None:
    for n in (first, first + 1):
        await engine.emit(result(n, Status.FAILURE))


async def recovery(engine: AlertEngine, first: int = 10) -> None:
    for n in (first, first + 1):
        await engine.emit(result(n, Status.SUCCESS))


def silence_cli(tmp_path: Path, *args: str) -> str:
    config = tmp_path / "synthmon.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["silence", "--config", str(config), *args]) == 0
    return out.getvalue()


@pytest.fixture
async def make_engine(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Any]:
    """Builds started engines notifying `receiver` at /webhook; stops them afterwards."""
    engines: list[AlertEngine] = []

    def build(**config: Any) -> AlertEngine:
        cfg = AlertingConfig.model_validate(
            {"webhook": {"url": {"env": "TEST_WEBHOOK_URL"}}, "resend_interval": "0.2s", **config}
        )
        eng = AlertEngine(
            cfg,
            data_dir=tmp_path,
            registry=CollectorRegistry(),
            journeys={"home": home}.get,
            is_paused=never_paused,
        )
        eng.start()
        engines.append(eng)
        return eng

    yield build
    for eng in engines:
        await eng.stop()


class TestMaintenanceWindows:
    async def test_window_holds_back_trigger(
        self, make_engine: Any, receiver: Receiver, tmp_path: Path
    ) -> None:
        """During a configured window an outage is tracked but nobody is notified."""
        now = datetime.now(UTC)
        engine = make_engine(
            maintenance=[
                {
                    "journeys": ["home"],
                    "start": (now - timedelta(minutes=1)).isoformat(),
                    "end": (now + timedelta(minutes=10)).isoformat(),
                    "comment": "db upgrade",
                }
            ]
        )
        try:
            await outage(engine)
            await asyncio.sleep(0.5)
            assert engine.outbox is not None
            assert engine.outbox.depth() == 0
        finally:
            await engine.stop()
        assert receiver.bodies == {}

    async def test_window_for_other_journey_does_not_apply(
        self, make_engine: Any, receiver: Receiver
    ) -> None:
        """A window scoped to another journey leaves this one's alerts alone."""
        engine = make_engine(
            maintenance=[{"journeys": ["other"], "cron": "* * * * *", "duration": "1h"}]
        )
        try:
            await outage(engine)
            await receiver.wait_for("/webhook", 1)
        finally:
            await engine.stop()

    def test_bad_window_is_a_config_error(self) -> None:
        """A window with neither start/end nor cron/duration is refused at load."""
        with pytest.raises(ValueError, match="give start= and end="):
            AlertingConfig.model_validate({"maintenance": [{"journeys": ["home"]}]})


class TestSilenceCommand:
    async def test_silence_then_expire_announces_ongoing_outage(
        self, make_engine: Any, receiver: Receiver, tmp_path: Path
    ) -> None:
        """A CLI silence holds back the trigger; once expired, the still-firing alert is
        announced, exactly once."""
        assert "silence 1: journey=home" in silence_cli(
            tmp_path, "add", "--journey", "home", "-d", "1h", "-m", "deploy"
        )
        engine = make_engine()
        try:
            await outage(engine)
            await asyncio.sleep(0.5)
            assert receiver.bodies == {}
            assert "deploy" in silence_cli(tmp_path, "list")
            silence_cli(tmp_path, "expire", "1")
            bodies = await receiver.wait_for("/webhook", 1)
            await asyncio.sleep(0.5)
        finally:
            await engine.stop()
        assert [b["event"] for b in bodies] == ["trigger"]
        assert len(receiver.bodies["/webhook"]) == 1

    async def test_resolve_is_delivered_during_silence(
        self, make_engine: Any, receiver: Receiver, tmp_path: Path
    ) -> None:
        """An incident announced before a silence still gets its resolve, so no page
        stays open forever."""
        engine = make_engine()
        try:
            await outage(engine)
            await receiver.wait_for("/webhook", 1)
            silence_cli(tmp_path, "add", "-m", "maintenance")
            await recovery(engine)
            bodies = await receiver.wait_for("/webhook", 2)
        finally:
            await engine.stop()
        assert [b["event"] for b in bodies] == ["trigger", "resolve"]


class TestHeartbeat:
    async def test_heartbeat_is_always_firing_in_alertmanager(
        self, tmp_path: Path, alertmanager: Alertmanager
    ) -> None:
        """With Alertmanager configured, SynthmonHeartbeat fires there with no journey at all."""
        cfg = AlertingConfig.model_validate(
            {"alertmanager": {"urls": [alertmanager.url]}, "resend_interval": "0.2s"}
        )
        engine = AlertEngine(
            cfg,
            data_dir=tmp_path,
            registry=CollectorRegistry(),
            journeys={}.get,
            is_paused=never_paused,
            location="eu",
        )
        engine.start()
        try:
            async with asyncio.timeout(10):
                while not (beats := await alertmanager.alerts(alertname="SynthmonHeartbeat")):
                    await asyncio.sleep(0.1)
        finally:
            await engine.stop()
        assert beats[0]["labels"] == {
            "alertname": "SynthmonHeartbeat",
            "severity": "none",
            "location": "eu",
        }
