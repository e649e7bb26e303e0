"""One run end to end, between the scheduler and the sinks.

For each scheduled (journey, target) slot the `Executor`:

1. takes a run slot (the global and the target's concurrency limits), bounded by the
   journey's timeout;
2. leases a synthetic account when the journey asks for one (`safety`);
3. hands one `RunRequest` to the journey kind's runner;
4. scrubs secrets out of the result, stamps the location, and hands it to the
   fan-out (`emit`);
5. applies the pair's `RetryPolicy`: a target failure is re-run after the delay up
   to `retries` times (the attempts before the last are emitted with retried=True, so
   they are recorded but not counted), and a failed final run is re-checked up to
   `rechecks` times instead of waiting for the next scheduled run (a re-check counts
   at once: it is not retried). A scheduled slot that comes due meanwhile is
   replaced by the retry or re-check (`in_chain`), never run beside it: a target
   that is down is not probed twice as often.

Runs cancelled by shutdown are still emitted, as error reason "shutdown".
"""

from __future__ import annotations

import asyncio
import dataclasses
import operator
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry

from synthmon.config.settings import Settings
from synthmon.errors import NoAccountError
from synthmon.journeys.context import NoTrace
from synthmon.journeys.dsl import Journey
from synthmon.model import Kind, RunRequest, RunResult, RunSource, RunTrace, Status, Target
from synthmon.runners.base import Runner, error_result, excuse_stall, new_run_id
from synthmon.safety.facade import Safety

log = structlog.get_logger("synthmon.execution")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the executor tries before a run's outcome counts."""

    retries: int = 0
    rechecks: int = 0
    delay: float = 5.0


class ExecutionEvents(Protocol):
    """What the executor reports (the daemon's metrics)."""

    def skipped_run(self, journey: str, target: str, reason: str, n: int = 1) -> None: ...

    def set_in_flight(self, n: int) -> None: ...


class LoopStalls(Protocol):
    """The event-loop watchdog's record of who blocked the loop, and when."""

    def stolen_from(
        self, task: str | None, since: float, until: float
    ) -> tuple[float, str | None]: ...


class TracedRun(RunTrace, Protocol):
    """An attempt's trace as the executor holds it: it ends with the final result."""

    def finish(self, result: RunResult) -> None: ...


class Tracing(Protocol):
    """Where runs become traces (`sinks.tracing`, or `NoTracing`)."""

    def start_run(
        self, journey: Journey, target: Target, run_id: str, attempt: int
    ) -> TracedRun: ...

    async def aclose(self) -> None: ...


class NoTracing:
    """`[tracing] enabled = false`: no spans, and OpenTelemetry is never imported."""

    def start_run(self, journey: Journey, target: Target, run_id: str, attempt: int) -> NoTrace:
        return NoTrace(run_id)

    async def aclose(self) -> None:
        pass


def build_tracing(
    settings: Settings, *, registry: CollectorRegistry, scrub: Callable[[str], str]
) -> Tracing:
    """`[tracing]` as the executor's Tracing. Off (or OTEL_SDK_DISABLED=true): no
    OpenTelemetry import at all."""
    if not settings.tracing.enabled or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return NoTracing()
    from synthmon.sinks.tracing.otel import OtelTracing

    return OtelTracing(settings.tracing, registry=registry, location=settings.location, scrub=scrub)


# `_stamp` builds the stamped copy positionally from every field's value, ~2.5x
# cheaper than `dataclasses.replace` (a per-run cost).
_FIELDS = tuple(f.name for f in dataclasses.fields(RunResult))
_LOCATION, _SCHEDULED_AT = _FIELDS.index("location"), _FIELDS.index("scheduled_at")
_values = operator.attrgetter(*_FIELDS)


def _stamp(result: RunResult, location: str | None, slot: float | None) -> RunResult:
    """`result` with `location` and `scheduled_at` set."""
    values = list(_values(result))
    values[_LOCATION], values[_SCHEDULED_AT] = location, slot
    return RunResult(*values)


def pair_key(journey: str, target: str) -> str:
    return f"{journey}@{target}"


class Executor:
    def __init__(
        self,
        *,
        runners: Mapping[Kind, Runner],
        safety: Safety,
        emit: Callable[[RunResult], None],
        retry_policy: Callable[[Journey, Target], RetryPolicy],
        events: ExecutionEvents,
        targets: Mapping[str, Target],
        max_concurrency: int,
        stalls: LoopStalls,
        tracing: Tracing,
        run_source: RunSource = RunSource.DAEMON,
        location: str | None = None,
    ) -> None:
        self.runners = runners
        # Required (STYLE 14): every attempt is a trace, or deliberately none.
        self._tracing = tracing
        self._safety = safety
        self._emit = emit
        self._retry_policy = retry_policy
        self._events = events
        self._peers = tuple(targets.values())
        self._max_concurrency = max_concurrency
        self._stalls = stalls
        self._run_source = run_source
        self._location = location
        self._global_slots = asyncio.Semaphore(max_concurrency)
        self._target_slots: dict[str, asyncio.Semaphore] = {}
        self.in_flight: set[asyncio.Task[Any]] = set()
        # pair key -> runs of it waiting for or running a retry/re-check.
        self._chains: dict[str, int] = {}

    def in_chain(self, key: str) -> bool:
        """True while a run of pair `key` is between its first attempt and its last
        retry/re-check: its scheduled slot coming due now is replaced, not skipped."""
        return self._chains.get(key, 0) > 0

    async def run_pair(
        self, journey: Journey, target: Target, *, attempt: int = 1, slot: float | None = None
    ) -> RunResult:
        """Run one journey against one target now, with its retries and re-checks, and
        hand each attempt to the sinks (stamped with the scheduled `slot`). Returns the
        last attempt's result."""
        policy = self._retry_policy(journey, target)
        key = pair_key(journey.name, target.name)
        task = asyncio.current_task()
        assert task is not None
        task.set_name(f"synthmon-run:{key}")
        # In flight across retries too, so shutdown waits for (or cancels) the retry.
        self.in_flight.add(task)
        self._events.set_in_flight(len(self.in_flight))
        rechecks = policy.rechecks
        rechecking = chained = False
        try:
            while True:
                may_retry = not rechecking and attempt <= policy.retries
                result = await self._attempt(
                    journey, target, attempt=attempt, may_retry=may_retry, slot=slot
                )
                if result.retried:
                    attempt += 1
                elif result.status.is_target_failure and rechecks > 0:
                    rechecks -= 1
                    attempt = 1
                    rechecking = True
                else:
                    return result
                if not chained:
                    chained = True
                    self._chains[key] = self._chains.get(key, 0) + 1
                await asyncio.sleep(policy.delay)
        finally:
            if chained:
                self._chains[key] -= 1
                if not self._chains[key]:
                    del self._chains[key]
            self.in_flight.discard(task)
            self._events.set_in_flight(len(self.in_flight))

    async def drain(self, grace: float) -> None:
        """Let in-flight runs finish within `grace` seconds; cancel the rest (they are
        recorded as error reason "shutdown")."""
        if not self.in_flight:
            return
        _, pending = await asyncio.wait(set(self.in_flight), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)

    def _hand_off(self, result: RunResult, slot: float | None) -> RunResult:
        """Scrub, stamp (location, slot) and emit `result`; returns what the sinks got."""
        # Secrets never reach a sink (logs, metrics, /api, alerts) inside a message.
        result = self._safety.scrub.result(result)
        if self._location is not None or slot is not None:
            result = _stamp(result, self._location, slot)
        self._emit(result)
        return result

    async def _attempt(
        self,
        journey: Journey,
        target: Target,
        *,
        attempt: int,
        may_retry: bool,
        slot: float | None = None,
    ) -> RunResult:
        run_id = new_run_id()
        started = time.time()
        # The run's root span: from here (waiting for a run slot included) to the result.
        trace = self._tracing.start_run(journey, target, run_id, attempt)
        try:
            result = await self._limited_run(
                journey, target, run_id=run_id, attempt=attempt, trace=trace
            )
        except asyncio.CancelledError:
            # Shutdown cut it short: still record that the run happened.
            final = self._hand_off(
                error_result(
                    journey,
                    target,
                    run_id,
                    started,
                    "shutdown",
                    "run cancelled by daemon shutdown",
                    attempt,
                ),
                slot,
            )
            trace.finish(final)
            raise
        if result.status is Status.TIMEOUT:
            result = self._excuse_stall(journey, result)
        if may_retry and result.status.is_target_failure:
            result = dataclasses.replace(result, retried=True)
        final = self._hand_off(result, slot)
        # After the scrub: the span carries what every other sink got.
        trace.finish(final)
        return final

    def retarget(self, names: Iterable[str]) -> None:
        """These targets' settings changed (hot reload): their next run takes a slot of
        the new max_concurrency; runs in flight finish on the old one."""
        for name in names:
            self._target_slots.pop(name, None)

    def _excuse_stall(self, journey: Journey, result: RunResult) -> RunResult:
        """A timeout that another journey caused by blocking the shared event loop is
        synthmon's problem (error reason "event_loop_blocked"), not the target's: it
        must not page. Only when the run got less than its timeout of unblocked time."""
        task = asyncio.current_task()
        now = time.monotonic()
        stolen, culprit = self._stalls.stolen_from(
            task.get_name() if task else None, now - result.duration, now
        )
        return excuse_stall(result, journey.timeout, stolen, culprit)

    async def _limited_run(
        self, journey: Journey, target: Target, *, run_id: str, attempt: int, trace: RunTrace
    ) -> RunResult:
        target_slots = self._target_slots.get(target.name)
        if target_slots is None:
            target_slots = self._target_slots[target.name] = asyncio.Semaphore(
                target.max_concurrency
            )
        started = time.time()
        acquired: list[asyncio.Semaphore] = []
        try:
            try:
                if self._global_slots.locked() or target_slots.locked():
                    async with asyncio.timeout(journey.timeout):
                        for sem in (self._global_slots, target_slots):
                            await sem.acquire()
                            acquired.append(sem)
                else:
                    # Both free: acquire() returns at once, so no timer to arm and
                    # cancel (a measurable share of a simple run's overhead).
                    for sem in (self._global_slots, target_slots):
                        await sem.acquire()
                        acquired.append(sem)
            except TimeoutError:
                self._events.skipped_run(journey.name, target.name, "concurrency")
                return error_result(
                    journey,
                    target,
                    run_id,
                    started,
                    "concurrency_limit",
                    f"no run slot free within {journey.timeout:g}s (global max_concurrency="
                    f"{self._max_concurrency}, target max_concurrency="
                    f"{target.max_concurrency}); raise the limits or spread the journeys",
                    attempt,
                )
            runner = self.runners.get(journey.kind)
            if runner is None:
                return error_result(
                    journey,
                    target,
                    run_id,
                    started,
                    f"{journey.kind.value}_unsupported",
                    f"no runner for kind={journey.kind.value!r} journeys in this daemon",
                    attempt,
                )
            try:
                if journey.max_response_bytes is not None:
                    # The journey's own body cap wins over its target's, for this run.
                    target = dataclasses.replace(
                        target,
                        max_response_bytes=journey.max_response_bytes,
                        max_response_source=f"journey {journey.name!r}",
                    )
                if journey.account is None:
                    # No account to lease: skip building the lease's context manager.
                    return await runner.run(
                        RunRequest(
                            journey=journey,
                            target=target,
                            run_id=run_id,
                            attempt=attempt,
                            run_source=self._run_source,
                            peers=self._peers,
                            trace=trace,
                        )
                    )
                async with self._safety.lease(journey, target) as (account, headers):
                    return await runner.run(
                        RunRequest(
                            journey=journey,
                            target=target,
                            run_id=run_id,
                            attempt=attempt,
                            run_source=self._run_source,
                            account=account,
                            extra_headers=headers,
                            peers=self._peers,
                            trace=trace,
                        )
                    )
            except NoAccountError as exc:
                return error_result(journey, target, run_id, started, exc.reason, str(exc), attempt)
            except Exception as exc:
                log.exception("runner_failed", journey=journey.name, target=target.name)
                return error_result(
                    journey,
                    target,
                    run_id,
                    started,
                    "internal",
                    f"synthmon failed to run the journey: {type(exc).__name__}: {exc}",
                    attempt,
                )
        finally:
            for sem in acquired:
                sem.release()
