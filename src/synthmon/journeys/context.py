"""`Context`: what a journey function receives, one fresh instance per run."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog

from synthmon.errors import InfrastructureError, StepFailedError
from synthmon.journeys.shadow import Shadow, ShadowError
from synthmon.model import RunSource, Status, StepResult, Target

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


class Context:
    """Per-run handle a journey uses: ``ctx.http``, ``ctx.page``, ``ctx.step(...)``.

    Everything a run records lives here and is turned into a `RunResult` by the
    runner when the run ends; nothing is kept on the `Journey`.
    """

    def __init__(
        self,
        *,
        journey: str,
        target: Target,
        run_id: str,
        trace_id: str,
        classify: Classifier,
        describe: Describer,
        http_factory: Callable[[], httpx.AsyncClient] | None = None,
        page: Page | None = None,
        account: Any = None,
        run_source: RunSource = RunSource.DAEMON,
        clock: Callable[[], float] = time.monotonic,
        peer_http_factory: Callable[[str], httpx.AsyncClient] | None = None,
    ) -> None:
        self.journey = journey
        self.target = target
        self.run_id = run_id
        self.trace_id = trace_id
        self.account = account
        self.run_source = run_source
        self._page = page
        self._log: Any = None
        self._http_factory = http_factory
        self._http: httpx.AsyncClient | None = None
        self._peer_http_factory = peer_http_factory
        self._peers: dict[str, httpx.AsyncClient] = {}
        self._shadow: Shadow | None = None
        self._classify = classify
        self._describe = describe
        self._clock = clock
        self._stack: list[str] = []
        self.steps: list[StepResult] = []
        self.deferred: list[Callable[[], Awaitable[Any]]] = []
        # The first hard step that failed, and the step in flight when cancelled.
        self.failed_step: str | None = None
        self.cancelled_in: str | None = None
        self.soft_failures: list[StepResult] = []

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
        if self._shadow is None:
            self._shadow = Shadow(self, self._peer_client)
        return self._shadow

    def _peer_client(self, target: str) -> httpx.AsyncClient:
        if target not in self._peers:
            if self._peer_http_factory is None:
                raise ShadowError("ctx.shadow needs an HTTP journey run by synthmon")
            self._peers[target] = self._peer_http_factory(target)
        return self._peers[target]

    @property
    def shadow_mismatches(self) -> dict[str, int]:
        return self._shadow.mismatches if self._shadow is not None else {}

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
        self._stack.append(name)
        full = " / ".join(self._stack)
        start = self._clock()
        try:
            yield
        except asyncio.CancelledError:
            self.cancelled_in = self.cancelled_in or full
            self._record(full, Status.TIMEOUT, start, soft, None)
            raise
        except Exception as exc:
            status, _ = self.classify_error(exc)
            result = self._record(full, status, start, soft, exc)
            if soft and not isinstance(exc, InfrastructureError):
                self.soft_failures.append(result)
                return
            self.failed_step = self.failed_step or full
            raise
        else:
            self._record(full, Status.SUCCESS, start, soft, None)
        finally:
            self._stack.pop()

    def fail(self, message: str) -> None:
        """Fail the current step with `message` (same as a failed assert)."""
        raise StepFailedError(message)

    def defer(self, cleanup: Callable[[], Awaitable[Any]]) -> None:
        """Register cleanup that runs after the journey, whatever its outcome."""
        self.deferred.append(cleanup)

    def classify_error(self, exc: BaseException) -> tuple[Status, str | None]:
        return self._classify(exc)

    def describe_error(self, exc: BaseException) -> tuple[str, str]:
        return self._describe(exc)

    def _record(
        self, name: str, status: Status, start: float, soft: bool, exc: BaseException | None
    ) -> StepResult:
        etype = emsg = None
        if exc is not None:
            etype, emsg = self.describe_error(exc)
        result = StepResult(
            name=name,
            status=status,
            duration=self._clock() - start,
            soft=soft,
            error_type=etype,
            error_message=emsg,
        )
        self.steps.append(result)
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
