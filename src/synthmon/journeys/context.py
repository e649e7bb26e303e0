"""`Context`: what a journey function receives, one fresh instance per run."""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from synthmon.errors import InfrastructureError, StepFailedError
from synthmon.journeys.shadow import Shadow, ShadowError
from synthmon.model import (
    Account,
    Attr,
    RunSource,
    RunTrace,
    SpanHandle,
    Status,
    StepResult,
    Target,
)

if TYPE_CHECKING:
    import httpx
    from playwright.async_api import Page

# Maps an exception raised inside a step to (status, reason).
Classifier = Callable[[BaseException], tuple[Status, str | None]]
# Describes an exception for humans: (error type, message).
Describer = Callable[[BaseException], tuple[str, str]]

# Called with (journey, step) as each step ends, in the task that runs the journey:
# `synthmon once` shows an author each step as it happens. Unset in the daemon.
step_listener: contextvars.ContextVar[Callable[[str, StepResult], None] | None] = (
    contextvars.ContextVar("synthmon_step_listener", default=None)
)


def random_traceparent(trace_id: str) -> str:
    """A W3C traceparent in trace `trace_id` with a new random span id."""
    return f"00-{trace_id}-{os.urandom(8).hex()}-01"


class _NoSpan:
    __slots__ = ("_trace_id",)

    def __init__(self, trace_id: str) -> None:
        self._trace_id = trace_id

    def traceparent(self) -> str:
        return random_traceparent(self._trace_id)

    def end(
        self,
        attributes: Mapping[str, Attr] | None = None,
        *,
        error: str | None = None,
        end_time: float | None = None,
    ) -> None:
        pass


class NoTrace:
    """Tracing off (`[tracing] enabled = false`): no spans, no OpenTelemetry import;
    every request still carries the run's trace id (a new span id each), so the
    backend's spans of one run share a trace."""

    __slots__ = ("trace_id",)

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id

    def traceparent(self) -> str:
        return random_traceparent(self.trace_id)

    def span(
        self,
        name: str,
        attributes: Mapping[str, Attr],
        *,
        client: bool = False,
        current: bool = False,
    ) -> SpanHandle:
        return _NoSpan(self.trace_id)

    def finish(self, result: object) -> None:
        pass


@dataclass(slots=True)
class RunRecord:
    """What one run records, held by the runner that made it (not journey-author API):
    how errors are classified and described, the steps, deferred cleanups, the first
    hard step that failed and the step in flight when the run was cancelled."""

    classify: Classifier
    describe: Describer
    clock: Callable[[], float] = time.monotonic
    steps: list[StepResult] = field(default_factory=list)
    deferred: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    failed_step: str | None = None
    cancelled_in: str | None = None
    soft_failures: list[StepResult] = field(default_factory=list)
    # ctx.shadow, once the journey used it: its mismatch counts go into the result.
    shadow: Shadow | None = None
    # (full step name, start, end) on the run's clock, to find the step a moment fell in.
    spans: list[tuple[str, float, float]] = field(default_factory=list)

    def step_at(self, moment: float) -> str | None:
        """The innermost step that was running at `moment` (the run's clock), if any."""
        inside = [span for span in self.spans if span[1] <= moment <= span[2]]
        return max(inside, key=lambda span: span[1])[0] if inside else None

    @property
    def shadow_mismatches(self) -> dict[str, int]:
        return self.shadow.mismatches if self.shadow is not None else {}


class Context:
    """Per-run handle a journey uses: ``ctx.http``, ``ctx.page``, ``ctx.step(...)``,
    ``ctx.account``, ``ctx.defer(...)``, ``ctx.log``.

    What the run records goes into the runner's `RunRecord` and is turned into a
    `RunResult` when the run ends; nothing is kept on the `Journey`.
    """

    def __init__(
        self,
        *,
        journey: str,
        target: Target,
        run_id: str,
        trace_id: str,
        run: RunRecord,
        http_factory: Callable[[], httpx.AsyncClient] | None = None,
        page: Page | None = None,
        account: Account | None = None,
        run_source: RunSource = RunSource.DAEMON,
        peer_http_factory: Callable[[str], httpx.AsyncClient] | None = None,
        trace: RunTrace | None = None,
    ) -> None:
        self.journey = journey
        # A span per step (docs/tracing.md); the runner passes the attempt's trace.
        self._trace: RunTrace = trace if trace is not None else NoTrace(trace_id)
        self.target = target
        self.run_id = run_id
        self.trace_id = trace_id
        self.run_source = run_source
        self._account = account
        self._page = page
        self._log: Any = None
        self._http_factory = http_factory
        self._http: httpx.AsyncClient | None = None
        self._run = run
        self._peer_http_factory = peer_http_factory
        self._peers: dict[str, httpx.AsyncClient] = {}
        self._stack: list[str] = []

    @property
    def account(self) -> Account:
        """The synthetic account leased for this run (journeys with ``account=``)."""
        if self._account is None:
            raise RuntimeError(
                f"journey {self.journey!r} holds no account: declare "
                "@journey(account='<pool>', ...) to lease one from [[accounts]]"
            )
        return self._account

    # -- resources ---------------------------------------------------------------

    @property
    def log(self) -> Any:
        """A structlog logger bound to this run (journey, target, run_id)."""
        if self._log is None:
            self._log = structlog.get_logger("synthmon.journey").bind(
                journey=self.journey, target=self.target.name, run_id=self.run_id
            )
        return self._log

    @property
    def base_url(self) -> str:
        return self.target.base_url

    @property
    def http(self) -> httpx.AsyncClient:
        """An httpx client bound to the target's base_url, fresh for this run (own
        cookies and connections), carrying synthmon's tagging headers."""
        if self._http is None:
            if self._http_factory is None:
                raise RuntimeError("this run has no HTTP client")
            self._http = self._http_factory()
        return self._http

    @property
    def shadow(self) -> Shadow:
        """Send a request to this target and to another, and compare the answers:
        ``await ctx.shadow.get("/api/cart", compare_to="new-backend")`` (HTTP journeys)."""
        if self._run.shadow is None:
            self._run.shadow = Shadow(self, self._peer_client)
        return self._run.shadow

    def _peer_client(self, target: str) -> httpx.AsyncClient:
        if target not in self._peers:
            if self._peer_http_factory is None:
                raise ShadowError("ctx.shadow needs an HTTP journey run by synthmon")
            self._peers[target] = self._peer_http_factory(target)
        return self._peers[target]

    @property
    def page(self) -> Page:
        """A fresh Playwright page (browser journeys only)."""
        if self._page is None:
            raise RuntimeError(
                f"journey {self.journey!r} is not a browser journey: "
                "declare it with @journey(kind='browser', ...) to use ctx.page"
            )
        return self._page

    @property
    def current_step(self) -> str | None:
        return " / ".join(self._stack) if self._stack else None

    # -- steps -------------------------------------------------------------------

    @asynccontextmanager
    async def step(self, name: str, *, soft: bool = False) -> AsyncIterator[None]:
        """Time a named part of the journey.

        A failure inside a hard step ends the journey and names this step; a failure
        inside ``soft=True`` step is recorded (the run still ends as failed) but the
        journey continues with the next step.
        """
        run = self._run
        self._stack.append(name)
        full = " / ".join(self._stack)
        span = self._trace.span(
            f"step {name}",
            {"test.case.name": full, "synthmon.step": full, "synthmon.step.soft": soft},
            current=True,
        )
        result: StepResult | None = None
        start = run.clock()
        try:
            yield
        except asyncio.CancelledError:
            run.cancelled_in = run.cancelled_in or full
            result = self._record(full, Status.TIMEOUT, start, soft, None)
            raise
        except Exception as exc:
            status, _ = run.classify(exc)
            result = self._record(full, status, start, soft, exc)
            if soft and not isinstance(exc, InfrastructureError):
                run.soft_failures.append(result)
                return
            run.failed_step = run.failed_step or full
            raise
        else:
            result = self._record(full, Status.SUCCESS, start, soft, None)
        finally:
            self._stack.pop()
            _end_step_span(span, result)

    def fail(self, message: str) -> None:
        """Fail the current step with `message` (same as a failed assert)."""
        raise StepFailedError(message)

    def defer(self, cleanup: Callable[[], Awaitable[Any]]) -> None:
        """Register cleanup that runs after the journey, whatever its outcome."""
        self._run.deferred.append(cleanup)

    def _record(
        self, name: str, status: Status, start: float, soft: bool, exc: BaseException | None
    ) -> StepResult:
        etype = emsg = None
        if exc is not None:
            etype, emsg = self._run.describe(exc)
        end = self._run.clock()
        self._run.spans.append((name, start, end))
        result = StepResult(
            name=name,
            status=status,
            duration=end - start,
            soft=soft,
            error_type=etype,
            error_message=emsg,
        )
        self._run.steps.append(result)
        listener = step_listener.get()
        if listener is not None:
            listener(self.journey, result)
        return result

    async def aclose(self) -> None:
        if self._http is not None:
            client, self._http = self._http, None
            await client.aclose()
        peers, self._peers = self._peers, {}
        for peer in peers.values():
            await peer.aclose()


def _end_step_span(span: SpanHandle, result: StepResult | None) -> None:
    if result is None:
        span.end(error="the step ended without a result")
        return
    passed = result.status is Status.SUCCESS
    error = None
    if not passed:
        error = f"{result.error_type}: {result.error_message}" if result.error_type else "failed"
    span.end(
        {
            "test.case.result.status": "pass" if passed else "fail",
            "synthmon.step.status": result.status.value,
        },
        error=error,
    )
