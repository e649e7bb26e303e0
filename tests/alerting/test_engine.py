"""The alerting engine's decisions beyond the plain failing journey: infrastructure
errors, latency budgets and reminders, checked at a local webhook receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from synthmon import Context, journey
from synthmon.alerting.engine import AlertEngine
from synthmon.alerting.render import AlertRenderer
from synthmon.config.alerting import AlertingConfig
from synthmon.model import RunResult, Status
from tests.alerting.conftest import Receiver, never_paused
from tests.harness import sample


@journey(name="shop", severity="critical", interval="30s", degraded_after="1s")
async def shop(ctx: Context) -> None:
    """Never run here: the tests feed results."""


def result(n: int, status: Status = Status.SUCCESS, duration: float = 0.2, **kw: Any) -> RunResult:
    return RunResult(
        journey="shop",
        target="prod",
        run_id=f"run-{n}",
        trace_id=f"trace-{n}",
        status=status,
        started_at=time.time(),
        duration=duration,
        **kw,
    )


Build = Callable[..., AlertEngine]


@pytest.fixture
async def make_engine(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Build]:
    """Started engines sending every severity to the receiver's /webhook."""
    engines: list[AlertEngine] = []

    def build(registry: CollectorRegistry | None = None, **config: Any) -> AlertEngine:
        cfg = AlertingConfig.model_validate(
            {"webhook": {"url": {"env": "TEST_WEBHOOK_URL"}}, **config}
        )
        eng = AlertEngine(
            cfg,
            data_dir=tmp_path,
            registry=registry or CollectorRegistry(),
            journeys={"shop": shop}.get,
            is_paused=never_paused,
        )
        eng.start()
        engines.append(eng)
        return eng

    yield build
    for eng in engines:
        await eng.stop()


class TestInfrastructureErrors:
    async def test_infra_errors_raise_internal_warning_not_outage(
        self, make_engine: Build, receiver: Receiver
    ) -> None:
        """Browser crashes on a critical journey raise a SynthmonInternalError warning;
        SyntheticJourneyFailed never fires."""
        engine = make_engine()
        for n in range(1, 6):
            await engine.emit(
                result(n, Status.ERROR, reason="browser_crash", error_message="Chromium died")
            )
        [body] = await receiver.wait_for("/webhook", 1)
        await asyncio.sleep(0.3)
        assert len(receiver.bodies["/webhook"]) == 1
        assert (body["alertname"], body["severity"], body["reason"]) == (
            "SynthmonInternalError",
            "warning",
            "browser_crash",
        )
        assert "not a target outage" in body["summary"]

    async def test_infra_errors_do_not_break_a_failure_streak(
        self, make_engine: Build, receiver: Receiver
    ) -> None:
        """fail, infra error, fail still counts as two consecutive failed runs."""
        engine = make_engine()
        await engine.emit(result(1, Status.FAILURE, failed_step="home"))
        await engine.emit(result(2, Status.ERROR, reason="no_account"))
        await engine.emit(result(3, Status.FAILURE, failed_step="home"))
        [body] = await receiver.wait_for("/webhook", 1)
        assert (body["alertname"], body["failed_runs"]) == ("SyntheticJourneyFailed", 2)


class TestDegraded:
    async def test_slow_passes_alert_as_warning_and_set_gauge(
        self, make_engine: Build, receiver: Receiver
    ) -> None:
        """Passes over the 1 s budget raise a SyntheticJourneyDegraded warning and set
        synthmon_journey_degraded, without a failure alert."""
        registry = CollectorRegistry()
        engine = make_engine(registry)
        for n in (1, 2):
            await engine.emit(result(n, duration=2.5))
        [body] = await receiver.wait_for("/webhook", 1)
        assert (body["alertname"], body["severity"]) == ("SyntheticJourneyDegraded", "warning")
        assert body["error_message"] == "run took 2.50s, budget 1s"
        text = generate_latest(registry).decode()
        assert sample(text, "synthmon_journey_degraded", journey="shop", target="prod") == 1
        for n in (3, 4):
            await engine.emit(result(n, duration=0.3))
        [_, resolved] = await receiver.wait_for("/webhook", 2)
        assert resolved["event"] == "resolve"


class TestReminders:
    async def test_reminders_while_firing_then_resolve(
        self, make_engine: Build, receiver: Receiver
    ) -> None:
        """A long outage gets a reminder every repeat_interval and one resolve."""
        engine = make_engine(repeat_interval="0.3s")
        for n in (1, 2):
            await engine.emit(result(n, Status.FAILURE, failed_step="home"))
        await receiver.wait_for("/webhook", 3, within=10)
        for n in (3, 4):
            await engine.emit(result(n))
        await asyncio.sleep(0.8)
        events = [b["event"] for b in receiver.json("/webhook")]
        assert events[0] == "trigger"
        assert events[-1] == "resolve"
        assert set(events[1:-1]) == {"reminder"}
        assert len({b["incident"] for b in receiver.json("/webhook")}) == 1


class TestPersistence:
    async def test_steady_passes_are_persisted_by_tick_and_stop(
        self, make_engine: Build, tmp_path: Path
    ) -> None:
        """Passes are not written one by one, yet a tick and a stop persist the latest
        state (last success time) so a restart does not forget it."""
        from synthmon.alerting.alert import AlertName
        from synthmon.alerting.store import AlertStore

        engine = make_engine()
        await engine.emit(result(1))
        key = engine._key(AlertName.FAILED, "shop", "prod")
        before = engine.store.load_states().get(key)
        assert before is None  # not written per pass
        engine.tick()
        first = engine.store.load_states()[key]["policy"]["last_success_at"]
        assert first is not None
        await engine.emit(result(2))
        await engine.stop()
        store = AlertStore(tmp_path / "alerting.sqlite3")
        try:
            saved = store.load_states()[key]["policy"]
        finally:
            store.close()
        assert saved["last_success_at"] >= first
        assert saved["consecutive_passes"] == 2


class TestLinks:
    def test_artifact_and_status_links_match_the_status_server(self) -> None:
        """Artifact paths on disk become /artifacts/<journey>/<run_id>/<file> links and
        the status link names the journey, as the status server serves them."""
        # The engine's links come from its AlertRenderer (alerting/render.py).
        render = AlertRenderer(location=None, external_url="https://synthmon.example/")
        disk = "/var/lib/synthmon/artifacts/shop/01abc/screenshot.png"
        assert render._artifact_url(disk) == (
            "https://synthmon.example/artifacts/shop/01abc/screenshot.png"
        )
        assert (
            render._status_url("shop", "prod")
            == "https://synthmon.example/journeys/shop?target=prod"
        )
