"""Runs as OpenTelemetry traces, exported over OTLP (docs/tracing.md).

`otel.OtelTracing` is the executor's `Tracing` when `[tracing] enabled = true`; the
daemon imports it only then, so a deployment without tracing never loads the SDK.
`export` builds the OTLP exporter (HTTP/protobuf or gRPC) and keeps export off the
run path: a bounded queue whose overflow is counted, failures logged once a minute.
"""
