"""The OTLP exporter and what keeps it off the run path.

Spans go to the SDK's `BatchSpanProcessor` (a worker thread batches and sends them)
behind `BoundedProcessor`, which refuses a span once `max_queue` are waiting or being
sent and counts it: a slow or unreachable collector costs spans, never run time.
`GuardedExporter` counts what was exported or lost and logs a failing collector once
a minute (the SDK's own per-batch log lines are captured, not printed).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
import structlog
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry, Counter
from typing_extensions import override  # typing.override from Python 3.12

from synthmon.config.tracing import TracingSettings

log = structlog.get_logger("synthmon.tracing")

# A failing collector is reported at most this often (with the spans lost meanwhile).
LOG_EVERY = 60.0


class TraceMetrics:
    """synthmon_trace_spans_exported_total and synthmon_trace_spans_dropped_total{reason}."""

    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        loc = ("location",) if location else ()
        self._loc: tuple[str, ...] = (location,) if location else ()
        self.exported = Counter(
            "synthmon_trace_spans_exported",
            "Spans the OTLP collector accepted.",
            loc,
            registry=registry,
        )
        self.dropped = Counter(
            "synthmon_trace_spans_dropped",
            "Spans lost: queue_full (export fell behind) or export_failed (the collector "
            "refused them or could not be reached).",
            ("reason", *loc),
            registry=registry,
        )
        for reason in ("queue_full", "export_failed"):
            self.dropped.labels(reason, *self._loc)

    def count_exported(self, n: int) -> None:
        counter = self.exported.labels(*self._loc) if self._loc else self.exported
        counter.inc(n)

    def count_dropped(self, reason: str, n: int) -> None:
        self.dropped.labels(reason, *self._loc).inc(n)


class _SdkLog(logging.Handler):
    """Keeps the OpenTelemetry SDK's last complaint for our once-a-minute line
    instead of printing one per batch (every flush_interval while a collector is down)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.last = record.getMessage()[:500]
        except Exception:  # noqa: BLE001 - a malformed record must not break export
            self.last = str(record.msg)[:500]


SDK_LOG = _SdkLog()


def capture_sdk_logs() -> None:
    """Route the `opentelemetry` loggers into `SDK_LOG` (idempotent)."""
    logger = logging.getLogger("opentelemetry")
    if SDK_LOG not in logger.handlers:
        logger.addHandler(SDK_LOG)
    logger.propagate = False


class BoundedProcessor(SpanProcessor):
    """`inner` (a BatchSpanProcessor) behind a hard bound: at most `max_queue` spans
    waiting or in flight; past that a span is dropped at once and counted."""

    def __init__(
        self, inner: SpanProcessor, *, max_queue: int, on_drop: Callable[[int], None]
    ) -> None:
        self._inner = inner
        self._max = max_queue
        self._pending = 0
        self._lock = threading.Lock()
        self._on_drop = on_drop

    @override  # the SDK calls it as each span ends
    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            full = self._pending >= self._max
            if not full:
                self._pending += 1
        if full:
            self._on_drop(1)
            return
        self._inner.on_end(span)

    def done(self, n: int) -> None:
        """`n` spans left the queue (exported or lost)."""
        with self._lock:
            self._pending = max(0, self._pending - n)

    @override
    def shutdown(self) -> None:
        self._inner.shutdown()

    @override
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class GuardedExporter(SpanExporter):
    """Counts exported and lost spans; a failing collector is logged when it starts
    failing, then at most once per `LOG_EVERY` seconds, and once when it recovers."""

    def __init__(
        self,
        inner: SpanExporter,
        *,
        metrics: TraceMetrics,
        endpoint: str,
        protocol: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._endpoint = endpoint
        self._protocol = protocol
        self._clock = clock
        self._last_log: float | None = None
        self._lost = 0
        self._failing = False
        self.on_done: Callable[[int], None] = lambda n: None

    @override  # the batch processor's worker thread calls it
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        n = len(spans)
        error = None
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - export problems never reach a run
            result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        self.on_done(n)
        if result is SpanExportResult.SUCCESS:
            self._metrics.count_exported(n)
            if self._failing:
                self._failing = False
                log.info("trace_export_recovered", endpoint=self._endpoint)
            return result
        self._metrics.count_dropped("export_failed", n)
        self._failing = True
        self._lost += n
        now = self._clock()
        if self._last_log is None or now - self._last_log >= LOG_EVERY:
            log.warning(
                "trace_export_failed",
                endpoint=self._endpoint,
                protocol=self._protocol,
                spans_lost=self._lost,
                error=error or SDK_LOG.last or "export failed",
                hint="runs go on without their traces; check the collector and [tracing] "
                "endpoint (logged at most once a minute)",
            )
            self._last_log, self._lost = now, 0
        return result

    @override
    def shutdown(self) -> None:
        self._inner.shutdown()

    @override
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class PinnedCaSession(requests.Session):
    """A session whose `verify` the environment's CA bundle variables cannot replace."""

    @override
    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        merged["verify"] = self.verify
        return merged


def protocol_of(settings: TracingSettings) -> str:
    """http or grpc: the setting, else OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL."""
    if settings.protocol is not None:
        return settings.protocol
    env = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    return "grpc" if env.strip().lower() == "grpc" else "http"


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def build_exporter(settings: TracingSettings) -> tuple[SpanExporter, str, str]:
    """(exporter, endpoint for logs, protocol) from `[tracing]`; what it leaves unset
    the SDK takes from the OTEL_EXPORTER_OTLP_* variables."""
    protocol = protocol_of(settings)
    headers = {k: v.get_secret_value() for k, v in settings.headers.items()} or None
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        credentials = None
        if settings.certificate is not None or settings.client_certificate is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(settings.certificate),
                private_key=_read(settings.client_key),
                certificate_chain=_read(settings.client_certificate),
            )
        compression = {"gzip": grpc.Compression.Gzip, "none": grpc.Compression.NoCompression}
        endpoint = (
            settings.endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4317"
        )
        exporter: SpanExporter = GrpcExporter(
            endpoint=settings.endpoint,
            credentials=credentials,
            headers=headers,
            timeout=settings.timeout,
            compression=compression.get(settings.compression or ""),
        )
        return exporter, endpoint, protocol
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (set in many images) override a
    # session's own CA bundle (psf/requests#3829): the configured certificate must win.
    session = PinnedCaSession() if settings.certificate is not None else None
    url = None
    if settings.endpoint is not None:
        url = settings.endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
    http_compression = {"gzip": Compression.Gzip, "none": Compression.NoCompression}
    exporter = HttpExporter(
        endpoint=url,
        certificate_file=str(settings.certificate) if settings.certificate else None,
        client_key_file=str(settings.client_key) if settings.client_key else None,
        client_certificate_file=(
            str(settings.client_certificate) if settings.client_certificate else None
        ),
        headers=headers,
        timeout=settings.timeout,
        compression=http_compression.get(settings.compression or ""),
        session=session,
    )
    where = url or (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318").rstrip("/")
        + "/v1/traces"
    )
    return exporter, where, protocol
