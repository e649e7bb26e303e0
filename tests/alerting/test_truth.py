"""The engine's view and what reaches people never disagree, through a `Daemon` built as
`synthmon run` builds it, the demo shop and a real Alertmanager (time compressed as in
test_alertmanager.py: journeys every second, Alertmanager re-sends every second)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from synthmon.alerting.alert import AlertName
from synthmon.alerting.policy import AlertState
from synthmon.cli import main as cli_main
from synthmon.daemon import Daemon
from synthmon_demo import RunningShop
from tests.alerting.conftest import Alertmanager, Receiver
from tests.alerting.test_alertmanager import alerting_toml, am_notifications, final, wait_until
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon

pytestmark = pytest.mark.slow

JOURNEY = """
from synthmon import Context, journey

@journey(severity="{severity}", interval="1s", timeout="0.5s")
async def home(ctx: Context) -> None:
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200, f"home page answered {{r.status_code}}"
"""


def settings(
    tmp_path: Path,
    shop: RunningShop,
    am: Alertmanager,
    rec: Receiver,
    severity: str = "critical",
    **extra: str,
) -> Any:
    return make_settings(
        tmp_path,
        targets={"demo": shop.url},
        journeys={"home.py": JOURNEY.format(severity=severity)},
        extra_toml=alerting_toml(am, rec, **extra),
    )


async def active(am: Alertmanager) -> list[dict[str, Any]]:
    return await am.alerts(alertname=AlertName.FAILED)


def state(daemon: Daemon) -> AlertState:
    t = daemon.alerting.state(AlertName.FAILED, "home", "demo")
    return AlertState.OK if t is None else t.policy.state


def events(rec: Receiver) -> list[str]:
    return [b["event"] for b in rec.json("/webhook")]


async def firing_with_reminders(daemon: Daemon, rec: Receiver, shop: RunningShop) -> None:
    await set_chaos(shop, "error")
    await wait_until(lambda: _reminded(rec), within=20)
    assert state(daemon) is AlertState.FIRING


async def _reminded(rec: Receiver) -> bool:
    return "reminder" in events(rec)


async def quiet_for(rec: Receiver, seconds: float) -> list[str]:
    """Webhook events that arrive within `seconds` from now."""
    before = len(events(rec))
    await asyncio.sleep(seconds)
    return events(rec)[before:]


class TestResolveResend:
    async def test_blip_after_recovery_never_reaches_alertmanager(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """One failed run within resolve_resend_for of a recovery: Alertmanager never
        holds a firing alert again while the engine's state stays below firing."""
        cfg = settings(
            tmp_path, shop, alertmanager, receiver, severity="warning", resolve_resend_for="8s"
        )
        async with run_daemon(cfg) as (daemon, results):
            await results.wait_for(lambda rs: any(r.ok for r in rs))
            await set_chaos(shop, "error")
            await receiver.wait_for("/webhook", 1, within=20)
            await set_chaos(shop, "ok")
            await receiver.wait_for("/webhook", 2, within=20)
            assert events(receiver) == ["trigger", "resolve"]
            await wait_until(lambda: _none(alertmanager))
            # The blip: exactly one failed run, then passes.
            n = len(results.results)
            await set_chaos(shop, "error")
            await results.wait_for(lambda rs: any(not r.ok for r in final(rs[n:])))
            await set_chaos(shop, "ok")
            blip = [r for r in final(results.results[n:]) if not r.ok]
            assert len(blip) == 1
            # Several resend ticks, all within resolve_resend_for.
            for _ in range(40):
                assert await active(alertmanager) == []
                assert state(daemon) is not AlertState.FIRING
                await asyncio.sleep(0.1)
        assert len(am_notifications(receiver, "firing")) == 1
        assert events(receiver) == ["trigger", "resolve"]


class TestHeldBack:
    async def test_silence_added_during_an_incident_stops_reminders(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """`synthmon silence add` during an incident: no more reminders while it lasts;
        the alert stays in Alertmanager (no false resolve) and the resolve still comes."""
        cfg = settings(tmp_path, shop, alertmanager, receiver, repeat_interval="0.5s")
        async with run_daemon(cfg) as (daemon, _):
            await firing_with_reminders(daemon, receiver, shop)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = cli_main(
                    ["silence", "--config", str(tmp_path / "synthmon.toml"), "add",
                     "--journey", "home", "-d", "1h", "-m", "deploy 4711"]
                )  # fmt: skip
            assert code == 0, out.getvalue()
            await asyncio.sleep(0.3)  # a reminder already in the outbox may still land
            assert await quiet_for(receiver, 2.5) == []
            assert state(daemon) is AlertState.FIRING
            assert len(await active(alertmanager)) == 1
            await set_chaos(shop, "ok")
            await wait_until(lambda: _resolved(receiver), within=20)
        assert len(am_notifications(receiver, "firing")) == 1

    async def test_pause_during_an_incident_stops_reminders(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """Pausing the journey (the kill switch) during an incident: no more reminders
        while it is paused; after resume and recovery the resolve comes."""
        cfg = settings(tmp_path, shop, alertmanager, receiver, repeat_interval="0.5s")
        async with run_daemon(cfg) as (daemon, _), httpx.AsyncClient() as client:
            await firing_with_reminders(daemon, receiver, shop)
            r = await client.post(f"{daemon.server.url}/api/pause", json={"journey": "home"})
            r.raise_for_status()
            await asyncio.sleep(0.3)
            assert await quiet_for(receiver, 2.5) == []
            assert state(daemon) is AlertState.FIRING
            await set_chaos(shop, "ok")
            r = await client.post(f"{daemon.server.url}/api/resume", json={"journey": "home"})
            r.raise_for_status()
            await wait_until(lambda: _resolved(receiver), within=20)


class TestFirstFailure:
    async def test_first_failure_at_names_the_first_failed_attempt(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """The trigger's first_failure_at is when the first failed attempt ended, the
        retried one, not the first counted failure a retry_delay later."""
        cfg = settings(tmp_path, shop, alertmanager, receiver, retry_delay="0.4s")
        async with run_daemon(cfg) as (_, results):
            await results.wait_for(lambda rs: any(r.ok for r in rs))
            n = len(results.results)
            await set_chaos(shop, "error")
            [trigger] = await receiver.wait_for("/webhook", 1, within=20)
        failed = [r for r in results.results[n:] if not r.ok]
        assert failed[0].retried
        first = failed[0].started_at + failed[0].duration
        assert trigger["first_failure_at"] == pytest.approx(first, abs=1e-3)
        counted = next(r for r in failed if not r.retried)
        assert trigger["first_failure_at"] < counted.started_at


async def _none(am: Alertmanager) -> bool:
    return await active(am) == []


async def _resolved(rec: Receiver) -> bool:
    return "resolve" in events(rec)
