"""`RecordedTrace`: a run's trace as a worker process sees it (docs/workers.md).

The worker has no exporter: it records each span (ids, parent, times, attributes,
error) and sends the records back with the `RunResult`; the daemon's tracer exports
them as spans of the attempt's trace (`sinks/tracing/otel.py`, `OtelRunTrace.adopt`).
Span ids are made here, so the traceparent a request carried names the very span the
collector receives, and the backend's spans join the run's trace.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Mapping

from synthmon.model import Attr, SpanHandle, SpanRecord

# (the trace, span id) of the innermost span opened with current=True in this task.
_current: contextvars.ContextVar[tuple[RecordedTrace, int] | None] = contextvars.ContextVar(
    "synthmon_worker_span", default=None
)


def _new_id() -> int:
    return int.from_bytes(os.urandom(8), "big") or 1


class _Span:
    __slots__ = ("_attributes", "_client", "_id", "_name", "_owner", "_parent", "_start", "_token")

    def __init__(
        self,
        owner: RecordedTrace,
        name: str,
        attributes: Mapping[str, Attr],
        client: bool,
        parent: int,
    ) -> None:
        self._owner, self._name, self._client, self._parent = owner, name, client, parent
        self._attributes = dict(attributes)
        self._id = _new_id()
        self._start = time.time_ns()
        self._token: contextvars.Token[tuple[RecordedTrace, int] | None] | None = None

    def traceparent(self) -> str:
        return self._owner.format(self._id)

    def end(
        self,
        attributes: Mapping[str, Attr] | None = None,
        *,
        error: str | None = None,
        end_time: float | None = None,
    ) -> None:
        if attributes:
            self._attributes.update(attributes)
        end = int(end_time * 1e9) if end_time is not None else time.time_ns()
        self._owner.close(self, end, error)

    def record(self, end: int, error: str | None) -> SpanRecord:
        ids, name, client = (self._id, self._parent), self._name, self._client
        return SpanRecord(*ids, name, client, self._attributes, self._start, end, error)


class RecordedTrace:
    """A `RunTrace` that records; `spans()` are the finished ones, in opening order."""

    def __init__(self, trace_id: str, root_span_id: int) -> None:
        self._trace_id = trace_id
        self._root = root_span_id
        self._open: list[_Span] = []  # current=True spans not ended, innermost last
        self._done: dict[int, SpanRecord] = {}
        self._order: list[int] = []

    def format(self, span_id: int) -> str:
        return f"00-{self._trace_id}-{span_id:016x}-01"

    def _parent(self) -> int:
        current = _current.get()
        if current is not None and current[0] is self:
            return current[1]
        return self._open[-1]._id if self._open else 0

    def traceparent(self) -> str:
        parent = self._parent()
        return self.format(parent or self._root)

    def span(
        self,
        name: str,
        attributes: Mapping[str, Attr],
        *,
        client: bool = False,
        current: bool = False,
    ) -> SpanHandle:
        span = _Span(self, name, attributes, client, self._parent())
        self._order.append(span._id)
        if current:
            span._token = _current.set((self, span._id))
            self._open.append(span)
        return span

    def close(self, span: _Span, end: int, error: str | None) -> None:
        self._done[span._id] = span.record(end, error)
        if span._token is not None:
            # Same task and context as the set (a step is one `async with`).
            _current.reset(span._token)
            if span in self._open:
                self._open.remove(span)

    def spans(self) -> list[SpanRecord]:
        """Every span opened, in order; one still open ends now (as the daemon's own
        trace ends them when the run finishes)."""
        now = time.time_ns()
        for span in self._open:
            self._done.setdefault(span._id, span.record(now, None))
        return [self._done[i] for i in self._order if i in self._done]
