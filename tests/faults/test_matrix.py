"""The fault matrix: one daemon (`synthmon run`, as deployed) runs one journey per
network fault of the fault server beside a healthy journey, for one window. Each test
checks one row: the recorded result and its message, the duration bound (timeout + 1 s),
and that exactly one alert fired for it; the healthy journey kept its schedule and
never alerted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    FaultRun,
    Faults,
    Receiver,
    free_port,
    have_netns,
    journey_file,
    run_synthmon,
)
from tests.faults.faultserver import UNRESOLVABLE

TIMEOUT = 1.0
WINDOW = 12.0

MATRIX = """
@journey(severity="critical", interval="1s", timeout="1s")
async def healthy(ctx: Context) -> None:
    r = await ctx.http.get("/ok")
    r.raise_for_status()


def failing(name):
    return journey(name=name, severity="critical", interval="2s", timeout="1s")


@failing("hang")
async def hang(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("{hang}/")  # line:hang


@failing("slow_status")
async def slow_status(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("/slow-status?delay=30")


@failing("slow_body")
async def slow_body(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("/slow-body?seconds=30")


@failing("reset")
async def reset(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("/reset")  # line:reset


@failing("truncated")
async def truncated(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("/truncated")  # line:truncated


@failing("server_error")
async def server_error(ctx: Context) -> None:
    async with ctx.step("request"):
        r = await ctx.http.get("/500")
        r.raise_for_status()  # line:server_error


@failing("bad_tls")
async def bad_tls(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("{tls}/ok")  # line:bad_tls


@failing("refused")
async def refused(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("{refused}/")  # line:refused


@journey(name="huge", severity="critical", interval="5s", timeout="5s")
async def huge(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("/huge-chunked?mb=200")  # line:huge


@journey(name="huge_declared", severity="critical", interval="5s", timeout="5s")
async def huge_declared(ctx: Context) -> None:
    async with ctx.step("request"):
        await ctx.http.get("/huge?mb=200")
"""

# The huge rows read 10 MiB before the cap stops them: 5 s, so a loaded machine
# does not turn them into timeouts (2.4 s was seen at load 13).
FAILING = {
    "hang": "timeout",
    "slow_status": "timeout",
    "slow_body": "timeout",
    "reset": "failure",
    "truncated": "failure",
    "server_error": "failure",
    "bad_tls": "failure",
    "refused": "failure",
    "huge": "failure",
    "huge_declared": "failure",
}


def _source(faults: Faults) -> str:
    return journey_file(
        MATRIX.replace("{hang}", faults.hang_url)
        .replace("{tls}", faults.tls_url)
        .replace("{refused}", faults.refused_url)
    )


def line_of(source: str, marker: str) -> int:
    for n, line in enumerate(source.splitlines(), 1):
        if f"# line:{marker}" in line:
            return n
    raise AssertionError(marker)


@pytest.fixture(scope="module")
def matrix(faults: Faults, receiver: Receiver, module_tmp: Path) -> tuple[FaultRun, str]:
    source = _source(faults)
    run = run_synthmon(
        module_tmp,
        {"matrix.py": source},
        {"faults": faults.url},
        window=WINDOW,
        receiver=receiver,
        # Each row alerts once: wait for every alert to arrive before the stop.
        until=lambda: all(receiver.triggers(j) for j in FAILING),
        # Ten failing rows share the target, three of them holding a connection for
        # their whole timeout: the default 4 slots made runs of a loaded machine wait
        # past 1 s for a slot ("no run slot free"), which is not what a row tests.
        target_extra=("max_concurrency = 16",),
    )
    return run, source


def _final(run: FaultRun, journey: str) -> list[dict[str, Any]]:
    """The runs of `journey` that measured its target: on a loaded machine the first
    slot (eleven runs at once in a fresh process) can stall the loop past a 1 s
    timeout, and those runs are recorded as what they are, checked by `_excused`."""
    runs = [r for r in run.runs(journey) if r.get("reason") != "event_loop_blocked"]
    assert runs, f"no run of {journey} recorded: {run.output[-2000:]}"
    return runs


def _excused(run: FaultRun, journey: str) -> list[dict[str, Any]]:
    """Runs cut short by a stalled loop: each must say so and never count against the
    target (docs/journeys.md, "Blocking code")."""
    cut = [r for r in run.runs(journey) if r.get("reason") == "event_loop_blocked"]
    for r in cut:
        assert (r["result"], r["error_type"]) == ("error", "EventLoopBlocked"), r
        assert r["error"].startswith("run cut short: the event loop was blocked"), r
    return cut


class TestNetworkFaults:
    @pytest.mark.parametrize("journey", sorted(FAILING))
    def test_row_recorded_within_bound_and_alerted_once(
        self, matrix: tuple[FaultRun, str], journey: str
    ) -> None:
        """Every run of a faulty target is recorded with the row's status within timeout
        + 1 s, none is lost (runs + counted skips cover the window), and the outage
        raises exactly one alert."""
        run, _ = matrix
        runs = _final(run, journey)
        assert {r["result"] for r in runs} == {FAILING[journey]}, runs
        timeout = 5.0 if journey.startswith("huge") else TIMEOUT
        interval = 5.0 if journey.startswith("huge") else 2.0
        assert max(r["duration_ms"] for r in runs) <= (timeout + 1) * 1000, runs
        # Every interval over the window: recorded or counted as skipped, never lost.
        recorded = len(runs) + len(_excused(run, journey))
        assert recorded + run.skipped(journey) >= WINDOW / interval - 2
        assert len(run.triggers(journey)) == 1, run.alerts

    def test_reset_names_reset_body_request_and_line(self, matrix: tuple[FaultRun, str]) -> None:
        """A reset mid-body says so, with the phase, the request and the journey line."""
        run, source = matrix
        msg = _final(run, "reset")[0]["error"]
        assert msg.startswith("connection reset by peer while reading the response body of GET "), (
            msg
        )
        assert f"/reset at matrix.py:{line_of(source, 'reset')}" in msg

    def test_refused_says_refused(self, matrix: tuple[FaultRun, str]) -> None:
        """A closed port says "connection refused", not "All connection attempts failed"."""
        run, source = matrix
        msg = _final(run, "refused")[0]["error"]
        assert msg.startswith("connection refused while opening the connection for GET "), msg
        assert f"matrix.py:{line_of(source, 'refused')}" in msg

    def test_truncated_body_says_how_much_arrived(self, matrix: tuple[FaultRun, str]) -> None:
        """A body cut short names the bytes received against those announced."""
        run, _ = matrix
        msg = _final(run, "truncated")[0]["error"]
        assert "connection closed before the response body was complete" in msg, msg
        assert "(received 100 bytes, expected 1000)" in msg

    def test_bad_tls_says_certificate(self, matrix: tuple[FaultRun, str]) -> None:
        """A self-signed certificate is a TLS verification failure, said in those words."""
        run, _ = matrix
        msg = _final(run, "bad_tls")[0]["error"]
        assert msg.startswith("TLS certificate verification failed (self-signed certificate)")

    def test_server_error_names_status_and_line(self, matrix: tuple[FaultRun, str]) -> None:
        """A 500 names the status, the request and the raise_for_status line."""
        run, source = matrix
        msg = _final(run, "server_error")[0]["error"]
        assert "500 Internal Server Error" in msg
        assert f"matrix.py:{line_of(source, 'server_error')}" in msg

    def test_timeouts_name_the_step(self, matrix: tuple[FaultRun, str]) -> None:
        """A hung target (accept-and-hang, slow status line, slow body) ends at the
        timeout naming the step it hung in."""
        run, _ = matrix
        for journey in ("hang", "slow_status", "slow_body"):
            for r in _final(run, journey):
                assert r["failed_step"] == "request", r
                assert "timeout" in r["error"].lower() or "timed out" in r["error"], r

    @pytest.mark.parametrize("journey", ["huge", "huge_declared"])
    def test_huge_body_fails_at_the_cap(self, matrix: tuple[FaultRun, str], journey: str) -> None:
        """A 200 MB body, chunked or announced, fails at the 10 MiB cap, naming the cap
        and the target setting; the daemon's memory stays bounded."""
        run, _ = matrix
        r = _final(run, journey)[0]
        assert r["error_type"] == "ResponseTooLargeError"
        assert "10 MiB cap (max_response_size of target 'faults')" in r["error"], r
        # Without the cap each 200 MB body was held whole (RSS 97 -> 373 MB per run).
        assert 0 < run.peak_rss < 250 * 1024 * 1024, run.peak_rss

    def test_healthy_journey_kept_its_schedule_and_never_alerted(
        self, matrix: tuple[FaultRun, str]
    ) -> None:
        """Beside every fault, the healthy journey passed every run it measured, ran
        about every second (none lost, none skipped unless the daemon reported its loop
        starved) and raised no alert."""
        run, _ = matrix
        runs = _final(run, "healthy")
        assert {r["result"] for r in runs} == {"success"}
        # No slot skipped, unless the daemon itself was starved of its loop for longer
        # than the interval (a loaded machine) and said so.
        starved = [e for e in run.of("event_loop_unblocked") if e["blocked_seconds"] >= 0.5]
        assert run.skipped("healthy") == 0 or starved, run.skipped("healthy")
        assert len(runs) + len(_excused(run, "healthy")) >= WINDOW - 3
        assert run.triggers("healthy") == []
        assert {a["journey"] for a in run.alerts} <= set(FAILING)

    def test_daemon_stopped_cleanly(self, matrix: tuple[FaultRun, str]) -> None:
        """After the fault window SIGTERM still drains and exits 0, without a traceback."""
        run, _ = matrix
        assert run.returncode == 0, run.output[-3000:]
        assert "Traceback" not in run.output


@pytest.mark.skipif(not have_netns(), reason="needs unprivileged network namespaces (unshare -rn)")
class TestUnresolvableName:
    def test_unresolvable_name_says_it_could_not_resolve(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """A name under .invalid (RFC 2606) fails as "could not resolve the host name".

        The daemon runs in a network namespace of its own with only loopback, so the
        lookup fails locally and no query leaves the machine."""
        source = journey_file(
            """
            @journey(severity="critical", interval="1s", timeout="1s")
            async def dns(ctx: Context) -> None:
                async with ctx.step("request"):
                    await ctx.http.get("/")
            """
        )
        run = run_synthmon(
            tmp_path,
            {"dns.py": source},
            {"nowhere": UNRESOLVABLE},
            window=4.0,
            receiver=receiver,
            wrap=["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"],
            port=free_port(),
        )
        runs = run.runs("dns")
        assert runs, run.output[-2000:]
        r = runs[0]
        assert r["result"] == "failure"
        assert re.match(
            r"could not resolve the host name \(.+\) while opening the connection for "
            r"GET http://shop\.invalid/",
            r["error"],
        ), r
        assert r["duration_ms"] <= 2000
