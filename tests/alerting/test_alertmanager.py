"""The alert path end to end: demo shop → daemon → outbox → a real Alertmanager →
its webhook notifications to a local receiver. Time is compressed 60x: journeys run
every second, Alertmanager gets a re-send every second with endsAt = now + 4 s
(production: 60 s and 4 min)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import synthmon
from synthmon.alerting.alert import AlertName
from synthmon.alerting.policy import AlertState
from synthmon.model import RunResult, Status
from synthmon_demo import RunningShop
from tests.alerting.conftest import Alertmanager, Receiver
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape

pytestmark = pytest.mark.slow
# Where `synthmon` is imported from, so the daemon subprocess runs the same code.
SRC = str(Path(synthmon.__file__).resolve().parents[1])

HOME = """
from synthmon import Context, journey

@journey(severity="critical", interval="{interval}", timeout="0.5s", tags=["shop"],
         description="The home page loads.", runbook_url="https://runbooks.example/home"{alert})
async def home(ctx: Context) -> None:
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200, f"home page answered {{r.status_code}}"
"""


def alerting_toml(am: Alertmanager, receiver: Receiver, **extra: str) -> str:
    lines = [
        "[alerting]",
        'resend_interval = "1s"',
        f'ends_at_min_interval = "{extra.pop("ends_at_min_interval", "1s")}"',
        f'resolve_resend_for = "{extra.pop("resolve_resend_for", "3s")}"',
        f'repeat_interval = "{extra.pop("repeat_interval", "1h")}"',
        'retry_base_delay = "0.2s"',
        'retry_max_delay = "1s"',
        f"heartbeat = {extra.pop('heartbeat', 'false')}",
        "[alerting.alertmanager]",
        f'urls = ["{am.url}"]',
        "[alerting.webhook]",
        'url = { env = "TEST_WEBHOOK_URL" }',
        "[alerting.routes]",
        'critical = ["alertmanager", "webhook"]',
        "[alerting.severity.critical]",
        f'retry_delay = "{extra.pop("retry_delay", "0.2s")}"',
    ]
    return "\n" + "\n".join(lines) + "\n"


def settings_for(
    tmp_path: Path,
    shop: RunningShop,
    am: Alertmanager,
    rec: Receiver,
    alert: str = "",
    interval: str = "1s",
    **extra: str,
) -> Any:
    return make_settings(
        tmp_path,
        targets={"demo": shop.url},
        journeys={"home.py": HOME.format(alert=alert, interval=interval)},
        extra_toml=alerting_toml(am, rec, **extra),
    )


def am_notifications(rec: Receiver, status: str, alertname: str = AlertName.FAILED) -> list[Any]:
    """Alerts in Alertmanager's webhook notifications with `status`."""
    return [
        a
        for body in rec.json("/am")
        for a in body["alerts"]
        if a["status"] == status and a["labels"]["alertname"] == alertname
    ]


async def wait_until(predicate: Any, within: float = 15.0, what: str = "") -> None:
    """Poll `predicate` (state in another process: nothing to wait on but polling)."""
    async with asyncio.timeout(within):
        while not await predicate():
            await asyncio.sleep(0.1)


def final(results: list[RunResult]) -> list[RunResult]:
    return [r for r in results if not r.retried]


class TestAlertmanagerPath:
    async def test_outage_fires_once_stays_firing_and_resolves(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """A shop outage gives exactly one Alertmanager alert that outlives its endsAt
        window while the outage lasts, and resolves when the shop recovers."""
        settings = settings_for(tmp_path, shop, alertmanager, receiver)
        async with run_daemon(settings) as (daemon, results):
            # Deadlines for what comes next are generous (60 s): on a loaded machine
            # the daemon, the shop and Alertmanager all wait for CPU.
            await results.wait_for(lambda rs: any(r.ok for r in rs), timeout=60)
            await set_chaos(shop, "error")
            await wait_until(lambda: _has(alertmanager), within=60, what="alert in Alertmanager")
            [alert] = await alertmanager.alerts(alertname="SyntheticJourneyFailed")
            assert alert["labels"] == {
                "alertname": "SyntheticJourneyFailed",
                "journey": "home",
                "target": "demo",
                "severity": "critical",
            }
            ann = alert["annotations"]
            assert ann["summary"] == "Journey home is failing on demo at step 'home'"
            assert ann["failing_step"] == "home"
            assert "home page answered 500" in ann["error"]
            assert ann["description"] == "The home page loads."
            assert ann["runbook_url"] == "https://runbooks.example/home"
            assert int(ann["failed_runs"]) >= 2
            assert {"run_id", "trace_id", "first_failure_at", "last_success_at"} <= ann.keys()
            # 7 s of outage = 7 "minutes": longer than the 4 s endsAt window.
            await asyncio.sleep(7)
            assert len(await alertmanager.alerts(alertname="SyntheticJourneyFailed")) == 1
            assert len(am_notifications(receiver, "firing")) == 1
            assert am_notifications(receiver, "resolved") == []
            await set_chaos(shop, "ok")
            await receiver.wait_for("/am", 2, within=60)
            await wait_until(lambda: _has(alertmanager, n=0), within=60)
            assert len(am_notifications(receiver, "resolved")) == 1
            text = await scrape(daemon)
        assert len(am_notifications(receiver, "firing")) == 1
        webhook = [b["event"] for b in receiver.json("/webhook")]
        assert webhook == ["trigger", "resolve"]
        assert sample(
            text, "synthmon_alert_notifications_total", notifier="alertmanager", result="ok"
        )

    async def test_blip_with_passing_retry_pages_nobody(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """One failed attempt whose retry passes is recorded and counted as a retry, but
        fires nothing, even with a policy that fires on a single failed run."""
        settings = settings_for(
            tmp_path,
            shop,
            alertmanager,
            receiver,
            alert=', alert={"consecutive": 1}',
            interval="2s",
            retry_delay="1s",
        )
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: any(r.ok for r in rs))
            await set_chaos(shop, "error")
            await results.wait_for(lambda rs: any(r.retried for r in rs))
            await set_chaos(shop, "ok")
            n = len(results.results)
            await results.wait_for(lambda rs: len(final(rs[n:])) >= 3)
            await asyncio.sleep(1.5)  # room for any notification to be delivered
            text = await scrape(daemon)
        retried = [r for r in results.results if r.retried]
        assert retried
        assert all(r.status is Status.FAILURE for r in retried)
        assert all(r.ok for r in final(results.results))
        assert sample(text, "synthmon_journey_retries_total", journey="home", target="demo") == len(
            retried
        )
        assert await alertmanager.alerts(alertname="SyntheticJourneyFailed") == []
        assert receiver.json("/webhook") == []
        assert am_notifications(receiver, "firing") == []

    async def test_alertmanager_down_then_up_loses_nothing(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """An alert raised while Alertmanager is down arrives once it is back: one
        notification, not zero and not two."""
        settings = settings_for(tmp_path, shop, alertmanager, receiver)
        alertmanager.stop()
        async with run_daemon(settings) as (daemon, _results):
            await set_chaos(shop, "error")

            async def failing_delivery() -> bool:
                text = await scrape(daemon)
                errors = sample(
                    text,
                    "synthmon_alert_notifications_total",
                    notifier="alertmanager",
                    result="error",
                )
                return bool(errors and errors >= 2)

            await wait_until(failing_delivery)
            state = daemon.alerting.state(AlertName.FAILED, "home", "demo")
            assert state is not None
            assert state.policy.state is AlertState.FIRING
            await alertmanager.start()
            await wait_until(lambda: _has(alertmanager))
            await asyncio.sleep(3)  # several re-sends later
            assert len(await alertmanager.alerts(alertname="SyntheticJourneyFailed")) == 1
            assert len(am_notifications(receiver, "firing")) == 1
            assert [b["event"] for b in receiver.json("/webhook")] == ["trigger"]


class TestRestart:
    async def test_killed_daemon_does_not_repage_and_still_resolves(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """SIGKILL during an incident: the restarted daemon sends no second trigger and
        delivers the resolve when the shop recovers."""
        # endsAt 20 s ahead: a restart on a loaded machine can take longer than the
        # 4 s of the other tests (in production endsAt is 4 minutes ahead).
        settings = settings_for(tmp_path, shop, alertmanager, receiver, ends_at_min_interval="5s")
        config = tmp_path / "synthmon.toml"
        await set_chaos(shop, "error")
        first = await _spawn(config, tmp_path / "first.log")
        try:
            await receiver.wait_for("/webhook", 1, within=20)
            await wait_until(lambda: _has(alertmanager))
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert settings.data_dir.joinpath("alerting.sqlite3").exists()
        second = await _spawn(config, tmp_path / "second.log")
        try:
            await asyncio.sleep(4)  # several failing runs in the new process
            assert [b["event"] for b in receiver.json("/webhook")] == ["trigger"]
            await set_chaos(shop, "ok")
            await receiver.wait_for("/webhook", 2, within=20)
            await wait_until(lambda: _has(alertmanager, n=0))
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
        events = [(b["event"], b["incident"]) for b in receiver.json("/webhook")]
        assert events == [("trigger", 1), ("resolve", 1)]
        assert len(am_notifications(receiver, "firing")) == 1


async def _has(am: Alertmanager, n: int = 1) -> bool:
    return len(await am.alerts(alertname="SyntheticJourneyFailed")) == n


async def _spawn(config: Path, logfile: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": SRC}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synthmon",
        "run",
        "--config",
        str(config),
        stdout=logfile.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
