"""`OtelTracing`: each attempt of a run as one OpenTelemetry trace.

The executor opens the root span (`start_run`) and ends it with the scrubbed result
(`OtelRunTrace.finish`); the runners open the children through the `RunTrace` they
get in the `RunRequest`: a span per step (current for the step's task, so requests
made in it become its children), an HTTP client span per `ctx.http` request and a
span per browser navigation. The trace id is the run id, so the id in an alert, in
/api and in the backend's traceparent is the one to search for.

Every string attribute and error passes the secret scrubber first: a span leaves
the machine, so it gets what the other sinks get.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry
from typing_extensions import override  # typing.override from Python 3.12

from synthmon._version import __version__
from synthmon.config.tracing import TracingSettings
from synthmon.journeys.context import NoTrace
from synthmon.journeys.dsl import Journey
from synthmon.model import Attr, RunResult, SpanHandle, SpanRecord, Target
from synthmon.model import Status as RunStatus
from synthmon.sinks.tracing.export import (
    LOG_EVERY,
    BoundedProcessor,
    GuardedExporter,
    TraceMetrics,
    build_exporter,
    capture_sdk_logs,
)

log = structlog.get_logger("synthmon.tracing")

# test.suite.run.status (OpenTelemetry semantic conventions, test attributes).
SUITE_STATUS = {
    RunStatus.SUCCESS: "success",
    RunStatus.FAILURE: "failure",
    RunStatus.TIMEOUT: "timed_out",
    RunStatus.ERROR: "aborted",
}
# Export gets this long at shutdown; what is still queued then is lost.
SHUTDOWN_SECONDS = 5.0


_faults: dict[str, float] = {}


def _fault(where: str) -> None:
    """A bug in tracing: logged (at most once a minute per place), the run goes on."""
    now = time.monotonic()
    if now - _faults.get(where, -LOG_EVERY) >= LOG_EVERY:
        _faults[where] = now
        log.exception("tracing_failed", where=where, hint="the run goes on without this span")


class _RunIds(RandomIdGenerator):
    """Random ids, except that a run's root span takes the run id as its trace id."""

    def __init__(self) -> None:
        self.next_trace_id: int | None = None
        # A span a worker process made (OtelRunTrace.adopt) keeps the id it was given.
        self.next_span_id: int | None = None

    @override  # the SDK calls it for a span without a parent
    def generate_trace_id(self) -> int:
        if self.next_trace_id is not None:
            trace_id, self.next_trace_id = self.next_trace_id, None
            return trace_id
        return super().generate_trace_id()

    @override
    def generate_span_id(self) -> int:
        if self.next_span_id is not None:
            span_id, self.next_span_id = self.next_span_id, None
            return span_id
        return super().generate_span_id()


def _traceparent(span: otel_trace.Span) -> str:
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


class _Span:
    __slots__ = ("_owner", "_span", "_token")

    def __init__(self, owner: OtelRunTrace, span: Span, token: object | None) -> None:
        self._owner, self._span, self._token = owner, span, token

    def traceparent(self) -> str:
        return _traceparent(self._span)

    def end(
        self,
        attributes: Mapping[str, Attr] | None = None,
        *,
        error: str | None = None,
        end_time: float | None = None,
    ) -> None:
        self._owner.end_span(self._span, self._token, attributes, error, end_time)


class OtelRunTrace:
    """One attempt's trace (satisfies `execution.TracedRun`)."""

    def __init__(
        self,
        tracer: otel_trace.Tracer,
        root: Span,
        scrub: Callable[[str], str],
        ids: _RunIds | None = None,
    ) -> None:
        self._tracer = tracer
        self._ids = ids
        self._root = root
        self._scrub = scrub
        self._trace_id = root.get_span_context().trace_id
        # Spans opened with current=True and not yet ended, innermost last: the parent
        # for spans opened outside the journey's task (Playwright's route handler).
        self._open: list[Span] = [root]

    def traceparent(self) -> str:
        return _traceparent(self._open[-1])

    def span(
        self,
        name: str,
        attributes: Mapping[str, Attr],
        *,
        client: bool = False,
        current: bool = False,
    ) -> SpanHandle:
        try:
            return self._span(name, attributes, client=client, current=current)
        except Exception:  # noqa: BLE001 - a tracing fault never fails a run
            _fault("span")
            return NoTrace(f"{self._trace_id:032x}").span(name, attributes)

    def _span(
        self, name: str, attributes: Mapping[str, Attr], *, client: bool, current: bool
    ) -> _Span:
        parent = otel_trace.get_current_span()
        if parent.get_span_context().trace_id != self._trace_id or not parent.is_recording():
            parent = self._open[-1]
        span = self._tracer.start_span(
            name,
            context=otel_trace.set_span_in_context(parent, otel_context.Context()),
            kind=SpanKind.CLIENT if client else SpanKind.INTERNAL,
            attributes=self._clean(attributes),
        )
        assert isinstance(span, Span)
        token = None
        if current:
            token = otel_context.attach(otel_trace.set_span_in_context(span))
            self._open.append(span)
        return _Span(self, span, token)

    def end_span(
        self,
        span: Span,
        token: object | None,
        attributes: Mapping[str, Attr] | None,
        error: str | None,
        end_time: float | None,
    ) -> None:
        try:
            self._end_span(span, token, attributes, error, end_time)
        except Exception:  # noqa: BLE001 - a tracing fault never fails a run
            _fault("end_span")

    def _end_span(
        self,
        span: Span,
        token: object | None,
        attributes: Mapping[str, Attr] | None,
        error: str | None,
        end_time: float | None,
    ) -> None:
        if attributes:
            span.set_attributes(self._clean(attributes))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, self._scrub(error)[:1000]))
        span.end(end_time=int(end_time * 1e9) if end_time is not None else None)
        if token is not None:
            # Same task and context as the attach (a step is one `async with`).
            otel_context.detach(token)  # type: ignore[arg-type]
            with contextlib.suppress(ValueError):
                self._open.remove(span)

    def adopt(self, records: Sequence[SpanRecord]) -> None:
        """Export spans a worker process recorded for this attempt (runners/workers/),
        with the ids, parents and times it gave them, scrubbed like our own."""
        try:
            self._adopt(records)
        except Exception:  # noqa: BLE001 - a tracing fault never fails a run
            _fault("adopt")

    def _adopt(self, records: Sequence[SpanRecord]) -> None:
        assert self._ids is not None
        root = self._root.get_span_context()
        for rec in records:
            parent = SpanContext(
                self._trace_id,
                rec.parent_id or root.span_id,
                is_remote=False,
                trace_flags=root.trace_flags,
            )
            self._ids.next_span_id = rec.span_id
            try:
                span = self._tracer.start_span(
                    rec.name,
                    context=otel_trace.set_span_in_context(
                        NonRecordingSpan(parent), otel_context.Context()
                    ),
                    kind=SpanKind.CLIENT if rec.client else SpanKind.INTERNAL,
                    attributes=self._clean(rec.attributes),
                    start_time=rec.start,
                )
            finally:
                self._ids.next_span_id = None
            if rec.error is not None:
                span.set_status(Status(StatusCode.ERROR, self._scrub(rec.error)[:1000]))
            span.end(end_time=rec.end)

    def finish(self, result: RunResult) -> None:
        """End the root span with the run's outcome (and any span left open)."""
        try:
            self._finish(result)
        except Exception:  # noqa: BLE001 - a tracing fault never fails a run
            _fault("finish")

    def _finish(self, result: RunResult) -> None:
        for span in reversed(self._open[1:]):
            span.end()
        self._open[1:] = []
        attributes: dict[str, Attr] = {
            "synthmon.result": result.status.value,
            "test.suite.run.status": SUITE_STATUS[result.status],
            "synthmon.retried": result.retried,
            "synthmon.duration_seconds": round(result.duration, 6),
        }
        optional = {
            "synthmon.reason": result.reason,
            "synthmon.failed_step": result.failed_step,
            "synthmon.error_type": result.error_type,
            "synthmon.location": result.location,
        }
        attributes |= {k: v for k, v in optional.items() if v is not None}
        self._root.set_attributes(self._clean(attributes))
        if result.status is not RunStatus.SUCCESS:
            why = result.error_message or result.reason or result.status.value
            self._root.set_status(Status(StatusCode.ERROR, self._scrub(why)[:1000]))
        self._root.end()

    def _clean(self, attributes: Mapping[str, Attr]) -> dict[str, Attr]:
        return {k: self._scrub(v) if isinstance(v, str) else v for k, v in attributes.items()}


class OtelTracing:
    """The executor's `Tracing` with `[tracing] enabled = true`."""

    def __init__(
        self,
        settings: TracingSettings,
        *,
        registry: CollectorRegistry,
        location: str | None = None,
        scrub: Callable[[str], str] = lambda text: text,
    ) -> None:
        capture_sdk_logs()
        self.metrics = TraceMetrics(registry, location=location)
        exporter, self.endpoint, self.protocol = build_exporter(settings)
        guarded = GuardedExporter(
            exporter, metrics=self.metrics, endpoint=self.endpoint, protocol=self.protocol
        )
        processor = BoundedProcessor(
            BatchSpanProcessor(
                guarded,
                max_queue_size=settings.max_queue,
                schedule_delay_millis=settings.flush_interval * 1000,
                max_export_batch_size=settings.max_batch,
            ),
            max_queue=settings.max_queue,
            on_drop=lambda n: self.metrics.count_dropped("queue_full", n),
        )
        guarded.on_done = processor.done
        name = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or "synthmon"
        self._ids = _RunIds()
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": name, "service.version": __version__}),
            id_generator=self._ids,
        )
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("synthmon", __version__)
        self._location = location
        self._scrub = scrub

    def start_run(
        self, journey: Journey, target: Target, run_id: str, attempt: int
    ) -> OtelRunTrace | NoTrace:
        try:
            return self._start_run(journey, target, run_id, attempt)
        except Exception:  # noqa: BLE001 - a tracing fault never fails a run
            _fault("start_run")
            return NoTrace(run_id)

    def _start_run(
        self, journey: Journey, target: Target, run_id: str, attempt: int
    ) -> OtelRunTrace:
        attributes: dict[str, Attr] = {
            "synthmon.journey": journey.name,
            "synthmon.target": target.name,
            "synthmon.target.url": target.base_url,
            "synthmon.run_id": run_id,
            "synthmon.attempt": attempt,
            "synthmon.severity": journey.severity.value,
            "synthmon.kind": journey.kind.value,
            "user_agent.synthetic.type": "test",
            "test.suite.name": journey.name,
            "test.suite.run.status": "in_progress",
        }
        if self._location is not None:
            attributes["synthmon.location"] = self._location
        try:
            self._ids.next_trace_id = int(run_id, 16) or None
        except ValueError:
            self._ids.next_trace_id = None
        span = self._tracer.start_span(
            f"journey {journey.name}",
            context=otel_context.Context(),  # a new trace, whatever is current
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        self._ids.next_trace_id = None
        assert isinstance(span, Span)
        return OtelRunTrace(self._tracer, span, self._scrub, self._ids)

    async def aclose(self) -> None:
        """Export what is queued, for up to SHUTDOWN_SECONDS, in a thread of its own: a
        collector that does not answer never holds up the daemon's shutdown."""
        done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def shutdown() -> None:
            try:
                self._provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(finished)

        threading.Thread(target=shutdown, name="synthmon-trace-shutdown", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                await done
