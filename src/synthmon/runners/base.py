"""What every runner shares: the Runner protocol, run ids, error classification and
`execute()`, which runs a journey under its hard timeout and builds the RunResult.

Nothing here imports Playwright: HTTP-only deployments never load it. The browser's
own error classification lives in `runners.browser.classify` and falls back to this."""

from __future__ import annotations

import asyncio
import dataclasses
import linecache
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx
import structlog

from synthmon.errors import HostNotAllowedError, InfrastructureError, StepFailedError
from synthmon.journeys.context import NoTrace, random_traceparent
from synthmon.model import RunRequest, RunResult, RunTrace, Status, Target
from synthmon.runners.network import explain

if TYPE_CHECKING:
    from synthmon.journeys.context import Context, RunRecord
    from synthmon.journeys.dsl import Journey

log = structlog.get_logger("synthmon.runner")

# Waits until one more request to the named target is within its
# max_requests_per_second (the daemon passes `safety.ratelimit.RateLimits.acquire`; a
# no-op for targets without one). Both runners require it: no run bypasses the limit.
Pace = Callable[[str], Awaitable[None]]


def basic_credentials(account: Any) -> tuple[str, str] | None:
    """(username, password) when the run's leased account sends HTTP basic auth
    (`[[accounts]] basic_auth = true`), else None."""
    if account is None or not getattr(account, "basic_auth", False):
        return None
    return str(account.username), str(account.password.get_secret_value())


# Cleanup registered with ctx.defer / cleanup= gets its own budget after the run.
CLEANUP_BUDGET = 10.0
# A run that ends this much past its timeout without the deadline firing is a timeout.
OVERRUN_GRACE = 0.05


class Runner(Protocol):
    """Turns one (journey, target) into one RunResult. Never raises for the journey's
    sake: every outcome, including timeouts and crashes, is a RunResult."""

    async def run(self, request: RunRequest) -> RunResult: ...


def new_run_id() -> str:
    """32 hex digits: 48 bits of milliseconds then 80 random bits.

    Sortable by start time (artifact folders list in order) and usable as a W3C
    trace id as is, so backend traces join the run that saw the failure.
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def traceparent(trace_id: str) -> str:
    """A W3C traceparent header for one request of a run (new span id each time)."""
    return random_traceparent(trace_id)


def run_trace(request: RunRequest) -> RunTrace:
    """The attempt's trace: the executor's, or (tracing off) the run id alone."""
    return request.trace if request.trace is not None else NoTrace(request.run_id)


def baggage(journey: str) -> str:
    """The W3C baggage sent on allowed hosts: the backend (and its own tracing) can
    tell synthetic traffic, and which journey, without parsing the User-Agent."""
    return f"synthetic=true,journey={quote(journey, safe='')}"


def add_baggage(existing: str | None, ours: str) -> str:
    """`ours` appended to a baggage header a journey set itself (kept, not replaced)."""
    return f"{existing},{ours}" if existing else ours


def classify(exc: BaseException) -> tuple[Status, str | None]:
    """(status, reason) for an exception a journey raised."""
    if isinstance(exc, InfrastructureError):
        return Status.ERROR, exc.reason
    if isinstance(exc, AssertionError | StepFailedError | httpx.HTTPStatusError):
        return Status.FAILURE, None
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return Status.TIMEOUT, None
    if isinstance(exc, HostNotAllowedError):
        # A journey asking for a host it is not allowed is the journey's bug.
        return Status.ERROR, None
    if isinstance(exc, httpx.TransportError):
        # Connection refused/reset, DNS, TLS: customers cannot reach the target.
        return Status.FAILURE, None
    return Status.ERROR, None


def describe(exc: BaseException, journey_file: str | None = None) -> tuple[str, str]:
    """(type name, message) for people: includes the URL of a failed request and,
    for a bare assert, the journey source line that failed."""
    etype = type(exc).__name__
    msg = str(exc).strip()
    if isinstance(exc, httpx.HTTPStatusError) and msg:
        # httpx appends "For more information check: <MDN link>": noise in an alert.
        msg = msg.splitlines()[0]
    if isinstance(exc, httpx.TransportError):
        # "connection reset by peer while reading the response body of GET ..."
        msg = explain(exc) or msg
    if isinstance(exc, httpx.HTTPError):
        try:
            req = exc.request
            where = f"{req.method} {req.url}"
            if where not in msg:
                msg = f"{msg or etype} ({where})"
        except RuntimeError:
            pass
    if journey_file and not isinstance(exc, InfrastructureError):
        # Any exception out of the journey (a KeyError in its own code too) names the
        # journey line it passed through last.
        if isinstance(exc, AssertionError):
            msg = msg or "assertion failed"
        elif not isinstance(exc, StepFailedError | httpx.HTTPError):
            # A bug in the journey: "'missing'" alone says nothing; "KeyError: 'missing'" does.
            msg = f"{etype}: {msg}" if msg else etype
        msg = at_journey_line(msg, exc, journey_file)
    return etype, msg or etype


def at_journey_line(msg: str, exc: BaseException, journey_file: str) -> str:
    """`msg` followed by the journey source line the exception passed through last."""
    loc = _journey_line(exc, journey_file)
    return f"{msg} at {loc}" if loc else msg


def _journey_line(exc: BaseException, journey_file: str) -> str | None:
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == journey_file:
            found = (lineno, linecache.getline(journey_file, lineno).strip())
    if not found:
        return None
    return f"{os.path.basename(journey_file)}:{found[0]}: {found[1]}"


async def execute(
    journey: Journey,
    ctx: Context,
    run: RunRecord,
    *,
    started_at: float,
    attempt: int = 1,
    clock: Callable[[], float] = time.monotonic,
    artifacts: Callable[[Status], tuple[str, ...]] | None = None,
) -> RunResult:
    """Run `journey` with `ctx` under its hard timeout and build the RunResult from
    what `run` (the context's state) recorded.

    Cancellation from outside (shutdown) propagates; everything else becomes a result.
    """
    t0 = clock()
    status = Status.SUCCESS
    reason = failed_step = etype = emsg = None
    try:
        async with asyncio.timeout(journey.timeout):
            await journey.func(ctx)
    except TimeoutError as exc:
        # Either our deadline (cancelled inside a step) or a TimeoutError the journey
        # raised; both mean the target did not answer in time.
        status = Status.TIMEOUT
        failed_step = run.cancelled_in or run.failed_step or ctx.current_step
        if run.cancelled_in is not None or not str(exc):
            emsg = f"journey did not finish within its {journey.timeout:g}s timeout"
            emsg += f" (in step {failed_step!r})" if failed_step else " (outside any step)"
            etype = "Timeout"
        else:
            etype, emsg = run.describe(exc)
    except Exception as exc:  # noqa: BLE001 - every journey outcome becomes a result
        status, reason = run.classify(exc)
        etype, emsg = run.describe(exc)
        failed_step = run.failed_step
    if status is Status.SUCCESS and run.soft_failures:
        first = run.soft_failures[0]
        status, failed_step = first.status, first.name
        etype, emsg = first.error_type, first.error_message
    duration = clock() - t0
    if status is Status.SUCCESS and duration > journey.timeout + OVERRUN_GRACE:
        # The deadline could not fire: the journey blocked the event loop (time.sleep,
        # blocking I/O, CPU work) or swallowed the cancellation. Past its timeout is a
        # timeout, whatever the cause (a pass here would hide an 8 s page load). A
        # failure past its timeout stays the failure it is.
        status, reason, etype = Status.TIMEOUT, None, "Timeout"
        failed_step = run.step_at(t0 + journey.timeout)
        emsg = (
            f"journey ran {duration:.1f}s, past its {journey.timeout:g}s timeout"
            + (f" (in step {failed_step!r})" if failed_step else " (outside any step)")
            + ": the event loop was blocked (time.sleep, blocking I/O or CPU work) or the"
            " cancellation was swallowed; run blocking code with 'await asyncio.to_thread(...)'"
        )
    paths = artifacts(status) if artifacts is not None else ()
    return RunResult(
        journey=journey.name,
        target=ctx.target.name,
        run_id=ctx.run_id,
        trace_id=ctx.trace_id,
        status=status,
        started_at=started_at,
        duration=duration,
        steps=tuple(run.steps),
        failed_step=failed_step,
        error_type=etype,
        error_message=emsg,
        reason=reason,
        artifacts=paths,
        attempt=attempt,
        shadow_mismatches=tuple(sorted(run.shadow_mismatches.items())),
    )


async def run_cleanups(
    journey: Journey, ctx: Context, run: RunRecord, budget: float = CLEANUP_BUDGET
) -> int:
    """Run deferred cleanups (last registered first), each within `budget` seconds.

    Returns how many failed; failures are logged and never change the run's result.
    """
    calls = list(reversed(run.deferred))
    if journey.cleanup is not None:
        cleanup = journey.cleanup
        calls.append(lambda: cleanup(ctx))
    failed = 0
    for call in calls:
        try:
            async with asyncio.timeout(budget):
                await call()
        except Exception as exc:  # noqa: BLE001 - cleanup failures never change the result
            failed += 1
            etype, emsg = describe(exc)
            log.warning(
                "cleanup_failed",
                journey=journey.name,
                target=ctx.target.name,
                run_id=ctx.run_id,
                error_type=etype,
                error=emsg,
            )
    return failed


def excuse_stall(
    result: RunResult, timeout: float, stolen: float, culprit: str | None
) -> RunResult:
    """A timeout that another journey caused by blocking the shared event loop (`stolen`
    seconds of the run, by `culprit`; runtime/watchdog.py) is synthmon's problem (error
    reason "event_loop_blocked"), not the target's: it must not page. Only when the run
    got less than its timeout of unblocked time. Used by the executor, and by a worker
    process for its own loop (runners/workers/child.py)."""
    if stolen <= 0 or result.duration - stolen >= timeout:
        return result
    return dataclasses.replace(
        result,
        status=Status.ERROR,
        reason="event_loop_blocked",
        error_type="EventLoopBlocked",
        error_message=f"run cut short: the event loop was blocked {stolen:.1f}s of its "
        f"{timeout:g}s timeout by {culprit} (a blocking call there, or a machine "
        "starved of CPU; blocking code belongs in 'await asyncio.to_thread(...)'). "
        "Not counted against the target",
    )


def error_result(
    journey: Journey,
    target: Target,
    run_id: str,
    started: float,
    reason: str,
    message: str,
    attempt: int,
    *,
    duration: float | None = None,
    error_type: str = "InfrastructureError",
) -> RunResult:
    """A run that never reached (or lost) the journey, for a reason of synthmon's own."""
    return RunResult(
        journey=journey.name,
        target=target.name,
        run_id=run_id,
        trace_id=run_id,
        status=Status.ERROR,
        started_at=started,
        duration=time.time() - started if duration is None else duration,
        error_type=error_type,
        error_message=message,
        reason=reason,
        attempt=attempt,
    )
