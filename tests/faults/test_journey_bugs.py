"""Journey bugs, through `synthmon run`: a journey that raises, blocks the event loop
(time.sleep), spins the CPU, or leaks tasks and httpx clients, beside a healthy one.

Blocking and spinning stall the one event loop every journey shares (docs/journeys.md,
"Blocking code"); what synthmon promises is that such a run is recorded as the timeout
it is, the watchdog names it with the real stall, and no other run is lost silently."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from synthmon.model import Status
from tests.faults.conftest import FaultRun, Faults, Receiver, journey_file, run_synthmon
from tests.faults.test_matrix import line_of
from tests.harness import make_settings, run_daemon

# How long the journeys run side by side before the alerts are waited for (`until`).
WINDOW = 20.0

BUGS = """
@journey(severity="critical", interval="1s", timeout="1s")
async def healthy(ctx: Context) -> None:
    r = await ctx.http.get("/ok")
    r.raise_for_status()


@journey(severity="critical", interval="6s", timeout="2s")
async def blocker(ctx: Context) -> None:
    async with ctx.step("sleep"):
        time.sleep(2.5)  # line:block


@journey(severity="critical", interval="6s", timeout="2s")
async def spinner(ctx: Context) -> None:
    async with ctx.step("spin"):
        end = time.monotonic() + 2.5
        while time.monotonic() < end:  # line:spin
            pass


@journey(severity="critical", interval="2s", timeout="1s")
async def raiser(ctx: Context) -> None:
    async with ctx.step("parse"):
        data: dict[str, int] = {}
        data["missing"]  # line:raise


# 2 s: its own client builds an SSL context (certifi), seconds under a loaded machine.
@journey(interval="2s", timeout="2s")
async def leaker(ctx: Context) -> None:
    asyncio.create_task(asyncio.sleep(3600))
    client = httpx.AsyncClient()
    r = await client.get(ctx.target.base_url + "/ok")
    assert r.status_code == 200
"""


# In the daemon's own loop, and in one worker process that every journey shares
# (docs/workers.md): the same promises either way.
@pytest.fixture(scope="module", params=[0, 1], ids=["in_process", "one_worker"])
def bugs(
    faults: Faults, module_tmp: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[FaultRun, str]]:
    source = journey_file(BUGS)
    receiver = Receiver()  # its own: each daemon's alerts are counted apart
    try:
        run = run_synthmon(
            module_tmp / f"workers{request.param}",
            {"bugs.py": source},
            {"faults": faults.url},
            window=WINDOW,
            receiver=receiver,
            env={"SYNTHMON_SCHEDULER__WORKERS": str(request.param)},
            # Every run of these fails, so each alerts: wait for the alerts to arrive (the
            # blocking journeys hold the loop, and so the outbox, most of the time).
            until=lambda: all(receiver.triggers(j) for j in ("blocker", "spinner", "raiser")),
        )
        yield run, source
    finally:
        receiver.close()


def _runs(run: FaultRun, journey: str) -> list[dict[str, Any]]:
    runs = run.runs(journey)
    assert runs, f"no run of {journey}: {run.output[-2000:]}"
    return runs


class TestBlockingJourney:
    @pytest.mark.parametrize(("journey", "step"), [("blocker", "sleep"), ("spinner", "spin")])
    def test_overrun_is_a_timeout(
        self, bugs: tuple[FaultRun, str], journey: str, step: str
    ) -> None:
        """time.sleep(2.5) or 2.5 s of CPU in a 2 s journey is a timeout naming the step
        and saying how to fix it, never a success; the outage alerts once."""
        run, _ = bugs
        runs = _runs(run, journey)
        assert {r["result"] for r in runs} == {"timeout"}, runs
        for r in runs:
            assert r["failed_step"] == step
            assert f"past its 2s timeout (in step '{step}')" in r["error"], r
            assert "asyncio.to_thread" in r["error"]
            assert r["duration_ms"] <= 3000
        assert len(run.triggers(journey)) == (1 if len(runs) >= 2 else 0), run.alerts

    def test_watchdog_reports_the_whole_stall_and_the_line(
        self, bugs: tuple[FaultRun, str]
    ) -> None:
        """When the loop comes back, the watchdog logs the real blocked time (not the
        first 0.3 s it saw), the journey and its line."""
        run, source = bugs
        ended = run.of("event_loop_unblocked", journey="blocker@faults")
        assert ended, run.output[-3000:]
        assert ended[0]["at"] == f"bugs.py:{line_of(source, 'block')}"
        assert ended[0]["blocked_seconds"] >= 2.2
        spin_line = line_of(source, "spin")
        spun = run.of("event_loop_unblocked", journey="spinner@faults")
        assert spun
        assert spun[0]["at"] in (f"bugs.py:{spin_line}", f"bugs.py:{spin_line + 1}")
        assert run.of("event_loop_blocked", journey="blocker@faults", still_blocked=True)

    def test_neighbours_lose_no_run_silently(self, bugs: tuple[FaultRun, str]) -> None:
        """The healthy journey is delayed by the stalls but every slot it missed is
        counted as skipped; it never fails and never pages."""
        run, _ = bugs
        runs = _runs(run, "healthy")
        assert {r["result"] for r in runs} <= {"success", "error"}, runs
        assert len(runs) + run.skipped("healthy") >= WINDOW - 3
        assert [
            a for a in run.triggers("healthy") if a["alertname"] == "SyntheticJourneyFailed"
        ] == []

    def test_neighbour_cut_short_by_a_stall_is_not_a_target_failure(
        self, bugs: tuple[FaultRun, str]
    ) -> None:
        """A run whose timeout ran out while another journey blocked the loop is error
        reason event_loop_blocked naming the blocker, never a timeout against its target."""
        run, _ = bugs
        cut = [r for r in _runs(run, "healthy") if r["result"] != "success"]
        for r in cut:
            assert r["reason"] == "event_loop_blocked", r
            # Usually blocker or spinner; under load the leaker's own client (an SSL
            # context built per client) can stall the loop long enough too.
            assert re.search(r"blocked \d+\.\ds of its 1s timeout by \S+", r["error"]), r
        named = ("by blocker@faults at bugs.py:", "by spinner@faults at bugs.py:")
        assert not cut or any(n in r["error"] for r in cut for n in named), cut


class TestRaisingJourney:
    def test_bug_names_exception_file_and_line(self, bugs: tuple[FaultRun, str]) -> None:
        """A KeyError in the journey is an error naming the exception, the file and the
        line, and (a broken journey is a broken check) it alerts once."""
        run, source = bugs
        runs = _runs(run, "raiser")
        r = runs[0]
        assert (r["result"], r["failed_step"], r["error_type"]) == ("error", "parse", "KeyError")
        line = line_of(source, "raise")
        assert (
            r["error"] == f"KeyError: 'missing' at bugs.py:{line}: data[\"missing\"]  # line:raise"
        )
        assert len(run.triggers("raiser")) == 1


class TestLeakingJourney:
    def test_leftover_tasks_and_clients_are_closed_and_reported(
        self, bugs: tuple[FaultRun, str]
    ) -> None:
        """A task never awaited and a client never closed are cancelled/closed when the
        run ends, logged naming the journey, and counted per kind; the run still passes."""
        run, _ = bugs
        runs = _runs(run, "leaker")
        # Runs cut short by the blocking neighbours are excused (event_loop_blocked).
        assert {r["result"] for r in runs if r.get("reason") != "event_loop_blocked"} <= {"success"}
        left = run.of("run_left_resources", journey="leaker")
        assert left, run.output[-3000:]
        assert (left[0]["tasks"], left[0]["http_clients"]) == (1, 1)
        assert "sleep" in left[0]["task_names"][0]
        # Every run reported (the last one may finish after the scrape).
        tasks = run.value("synthmon_journey_left_behind_total", journey="leaker", kind="task")
        clients = run.value(
            "synthmon_journey_left_behind_total", journey="leaker", kind="http_client"
        )
        assert len(runs) - 1 <= tasks <= len(runs)
        assert tasks == clients
        assert run.of("run_left_resources", journey="healthy") == []


# The journey blocks the loop, then awaits a child task that blocks it in turn; the
# child's turn comes before the watchdog's own task gets the loop back, so to the
# watchdog it is one unbroken stall held by two tasks, one after the other.
RELAY = """import asyncio
import time

from synthmon import Context, journey


@journey(interval="7d", timeout="10s")
async def relay(ctx: Context) -> None:
    async def child() -> None:
        time.sleep(1.0)  # line:second

    async with ctx.step("relay"):
        task = asyncio.create_task(child(), name="relay-child")
        time.sleep(1.5)  # line:first
        await task
"""


class TestStallAttribution:
    async def test_each_task_of_one_stall_is_named_with_its_own_time(self, tmp_path: Path) -> None:
        """Two tasks blocking the loop back to back are reported as two stalls, each
        naming its own task and line; the first is not blamed on the one after it."""
        settings = make_settings(
            tmp_path, targets={"demo": "http://127.0.0.1:9"}, journeys={"relay.py": RELAY}
        )
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings) as (daemon, _):
                result = await asyncio.create_task(daemon.run_pair(*daemon.pairs["relay@demo"]))
        assert result.status is Status.SUCCESS, result.error_message
        # Only this journey's file: start-up on a loaded machine may stall the loop too.
        ended = [
            e
            for e in logs
            if e["event"] == "event_loop_unblocked" and str(e["at"]).startswith("relay.py:")
        ]
        assert [(e["task"], e["journey"], e["at"]) for e in ended] == [
            ("synthmon-run:relay@demo", "relay@demo", f"relay.py:{line_of(RELAY, 'first')}"),
            ("relay-child", None, f"relay.py:{line_of(RELAY, 'second')}"),
        ], ended
        assert ended[0]["blocked_seconds"] >= 1.2
