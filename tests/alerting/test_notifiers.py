"""What PagerDuty, Slack and webhook receivers get, byte for byte, for one incident
(the schemas documented in docs/alerting.md), delivered through the real outbox to a
local receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from synthmon import Context, journey
from synthmon.alerting.engine import AlertEngine
from synthmon.config.alerting import AlertingConfig
from synthmon.model import RunResult, Status
from tests.alerting.conftest import Receiver, never_paused


@journey(
    name="checkout",
    severity="critical",
    interval="30s",
    tags=["shop"],
    description="A shopper can pay.",
    runbook_url="https://runbooks.example/checkout",
)
async def checkout(ctx: Context) -> None:
    """Never run here: the tests feed results."""


def run(n: int, status: Status, **kw: Any) -> RunResult:
    return RunResult(
        journey="checkout",
        target="prod",
        run_id=f"run-{n}",
        trace_id=f"trace-{n}",
        status=status,
        started_at=1000.0 + 10 * n,
        duration=1.5,
        **kw,
    )


def failed(n: int) -> RunResult:
    return run(
        n,
        Status.FAILURE,
        failed_step="pay",
        error_type="AssertionError",
        error_message="POST /api/pay answered 500 (token=abc123)",
        artifacts=(f"runs/run-{n}/screenshot.png",),
    )


def compact(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
async def engine(tmp_path: Path, receiver: Receiver) -> AsyncIterator[AlertEngine]:
    """An alerting engine routing critical alerts to PagerDuty, Slack and a webhook."""
    config = AlertingConfig.model_validate(
        {
            "pagerduty": {"routing_key": {"env": "TEST_PD_KEY"}, "url": f"{receiver.url}/pd"},
            "slack": {"url": {"env": "TEST_SLACK_URL"}},
            "webhook": {"url": {"env": "TEST_WEBHOOK_URL"}},
            "routes": {"critical": ["pagerduty", "slack", "webhook"]},
        }
    )
    eng = AlertEngine(
        config,
        data_dir=tmp_path,
        registry=CollectorRegistry(),
        journeys={"checkout": checkout}.get,
        is_paused=never_paused,
        location="eu-1",
        external_url="https://synthmon.example/",
    )
    eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


ALERT = {
    "version": 1,
    "key": "SyntheticJourneyFailed/checkout/prod@eu-1",
    "alertname": "SyntheticJourneyFailed",
    "journey": "checkout",
    "target": "prod",
    "location": "eu-1",
    "severity": "critical",
    "state": "firing",
    "event": "trigger",
    "incident": 1,
    "summary": "Journey checkout is failing on prod at step 'pay'",
    "failing_step": "pay",
    "error_message": "POST /api/pay answered 500 (token=***)",
    "reason": None,
    "run_id": "run-3",
    "trace_id": "trace-3",
    "first_failure_at": 1021.5,
    "failed_runs": 2,
    "last_success_at": 1011.5,
    "fired_at": 1031.5,
    "resolved_at": None,
    "artifacts": ["https://synthmon.example/artifacts/runs/run-3/screenshot.png"],
    "description": "A shopper can pay.",
    "runbook_url": "https://runbooks.example/checkout",
    "status_url": "https://synthmon.example/journeys/checkout?target=prod",
    "trace_url": None,
    "tags": ["shop"],
    "interval": 30.0,
}
RESOLVED = ALERT | {
    "state": "resolved",
    "event": "resolve",
    "summary": "Journey checkout on prod passes again",
    "last_success_at": 1051.5,
    "resolved_at": 1051.5,
}
PAGERDUTY_TRIGGER = {
    "routing_key": "test-routing-key",
    "event_action": "trigger",
    "dedup_key": "synthmon-c0a5f4e9d5f2b4b1",
    "payload": {
        "summary": "Journey checkout is failing on prod at step 'pay'",
        "source": "checkout@prod/eu-1",
        "severity": "critical",
        "component": "prod",
        "group": "checkout",
        "class": "SyntheticJourneyFailed",
        "custom_details": {
            "journey": "checkout",
            "target": "prod",
            "location": "eu-1",
            "failing_step": "pay",
            "error": "POST /api/pay answered 500 (token=***)",
            "run_id": "run-3",
            "trace_id": "trace-3",
            "failed_runs": 2,
            "first_failure_at": 1021.5,
            "last_success_at": 1011.5,
            "description": "A shopper can pay.",
            "runbook_url": "https://runbooks.example/checkout",
            "artifacts": ["https://synthmon.example/artifacts/runs/run-3/screenshot.png"],
        },
    },
    "client": "synthmon",
    "client_url": "https://synthmon.example/journeys/checkout?target=prod",
    "links": [
        {
            "href": "https://synthmon.example/journeys/checkout?target=prod",
            "text": "synthmon status",
        },
        {"href": "https://runbooks.example/checkout", "text": "Runbook"},
        {
            "href": "https://synthmon.example/artifacts/runs/run-3/screenshot.png",
            "text": "Artifact",
        },
    ],
}
SLACK_TRIGGER = {
    "text": ":red_circle: *FIRING* [critical] Journey checkout is failing on prod at step 'pay'\n"
    "*Failing step:* pay\n"
    "*Error:* POST /api/pay answered 500 (token=***)\n"
    "*Failed runs:* 2 since 1970-01-01 00:17:01Z; last success 1970-01-01 00:16:51Z\n"
    "*Run:* run-3 (trace trace-3)\n"
    "*Artifact:* <https://synthmon.example/artifacts/runs/run-3/screenshot.png>\n"
    "<https://runbooks.example/checkout|Runbook> · "
    "<https://synthmon.example/journeys/checkout?target=prod|Status>"
}
SLACK_RESOLVE = {
    "text": ":white_check_mark: *RESOLVED* [critical] Journey checkout on prod passes again\n"
    "<https://runbooks.example/checkout|Runbook> · "
    "<https://synthmon.example/journeys/checkout?target=prod|Status>"
}


async def incident(engine: AlertEngine, receiver: Receiver) -> None:
    for result in (run(1, Status.SUCCESS), failed(2), failed(3)):
        await engine.emit(result)
    for path in ("/pd", "/slack", "/webhook"):
        await receiver.wait_for(path, 1)
    for result in (run(4, Status.SUCCESS), run(5, Status.SUCCESS)):
        await engine.emit(result)
    for path in ("/pd", "/slack", "/webhook"):
        await receiver.wait_for(path, 2)


class TestPayloads:
    async def test_webhook_schema(self, engine: AlertEngine, receiver: Receiver) -> None:
        """The webhook gets the documented JSON for the trigger and the resolve,
        with secrets scrubbed from the error and links made absolute."""
        await incident(engine, receiver)
        assert receiver.bodies["/webhook"] == [compact(ALERT), compact(RESOLVED)]

    async def test_pagerduty_events_v2(self, engine: AlertEngine, receiver: Receiver) -> None:
        """PagerDuty gets a trigger and a resolve sharing one stable dedup_key."""
        await incident(engine, receiver)
        trigger, _ = receiver.json("/pd")
        dedup = trigger["dedup_key"]
        assert receiver.bodies["/pd"] == [
            compact(PAGERDUTY_TRIGGER | {"dedup_key": dedup}),
            compact(
                {"routing_key": "test-routing-key", "event_action": "resolve", "dedup_key": dedup}
            ),
        ]
        assert dedup.startswith("synthmon-")

    async def test_slack_text(self, engine: AlertEngine, receiver: Receiver) -> None:
        """Slack gets one readable message when it fires and one when it recovers."""
        await incident(engine, receiver)
        assert receiver.bodies["/slack"] == [compact(SLACK_TRIGGER), compact(SLACK_RESOLVE)]

    async def test_dedup_key_is_stable_per_incident(
        self, engine: AlertEngine, receiver: Receiver
    ) -> None:
        """A second outage of the same pair opens a new PagerDuty incident (new key);
        the same incident always uses the same key."""
        await incident(engine, receiver)
        for n in (6, 7):
            await engine.emit(failed(n))
        bodies = await receiver.wait_for("/pd", 3)
        assert bodies[0]["dedup_key"] == bodies[1]["dedup_key"]
        assert bodies[2]["dedup_key"] != bodies[0]["dedup_key"]


class TestRouting:
    async def test_info_journeys_notify_nobody(self, tmp_path: Path, receiver: Receiver) -> None:
        """An info journey failing for good sends nothing, not even to a catch-all route."""
        info = journey(name="checkout", severity="info", interval="30s")(checkout.func)
        config = AlertingConfig.model_validate(
            {"webhook": {"url": {"env": "TEST_WEBHOOK_URL"}}, "routes": {"info": ["webhook"]}}
        )
        eng = AlertEngine(
            config,
            data_dir=tmp_path,
            registry=CollectorRegistry(),
            journeys={"checkout": info}.get,
            is_paused=never_paused,
        )
        eng.start()
        try:
            for n in range(1, 6):
                await eng.emit(failed(n))
            assert eng.outbox is not None
            assert eng.outbox.depth() == 0
        finally:
            await eng.stop()
        assert receiver.bodies == {}

    def test_route_to_unconfigured_notifier_is_refused(self) -> None:
        """A route naming a notifier without its config section is a config error."""
        with pytest.raises(ValueError, match=r"notifier 'pagerduty' is not configured"):
            AlertingConfig.model_validate({"routes": {"critical": ["pagerduty"]}})


class TestRemovedJourney:
    async def test_removing_a_firing_journey_resolves_it(
        self, engine: AlertEngine, receiver: Receiver
    ) -> None:
        """A journey deleted during its incident sends a resolve instead of leaving the
        page open."""
        for result in (failed(1), failed(2)):
            await engine.emit(result)
        await receiver.wait_for("/webhook", 1)
        engine.set_catalog([])
        [_, resolve] = await receiver.wait_for("/webhook", 2)
        assert resolve["event"] == "resolve"
        assert "no longer monitored" in resolve["summary"]

    async def test_load_problem_keeps_the_incident(
        self, engine: AlertEngine, receiver: Receiver
    ) -> None:
        """When journey files failed to load, a missing journey is not resolved."""
        for result in (failed(1), failed(2)):
            await engine.emit(result)
        await receiver.wait_for("/webhook", 1)
        engine.set_catalog([], complete=False)
        await engine.emit(failed(3))
        assert engine.outbox is not None
        await engine.outbox.deliver_due()
        assert [b["event"] for b in receiver.json("/webhook")] == ["trigger"]
