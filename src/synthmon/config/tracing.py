"""`[tracing]`: each run exported as an OpenTelemetry trace over OTLP (docs/tracing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from synthmon.config.durations import parse_duration
from synthmon.config.secrets import SecretRef

Duration = Annotated[float, BeforeValidator(parse_duration)]


class TracingSettings(BaseModel):
    """`[tracing]`: each run exported as an OpenTelemetry trace over OTLP (docs/tracing.md).
    Unset exporter options fall back to the standard OTEL_EXPORTER_OTLP_* variables."""

    # A typo in a key is an error, not a silently ignored setting (as every section).
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # Base URL of the collector ("http://otel-collector:4318"; gRPC: ":4317"); for
    # http/protobuf "/v1/traces" is appended unless given. None: OTEL_EXPORTER_OTLP_*.
    endpoint: str | None = None
    # None: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL, else http.
    protocol: Literal["http", "grpc"] | None = None
    # Sent with every export (an API key, a tenant id); values are secrets: never logged.
    headers: dict[str, SecretRef] = Field(default_factory=dict)
    # Per export request. None: OTEL_EXPORTER_OTLP_TIMEOUT, else 10 s.
    timeout: Duration | None = None
    compression: Literal["none", "gzip"] | None = None
    # TLS: a CA bundle to verify the collector with, and a client certificate + key (mTLS).
    certificate: Path | None = None
    client_certificate: Path | None = None
    client_key: Path | None = None
    # None: OTEL_SERVICE_NAME, else "synthmon". OTEL_RESOURCE_ATTRIBUTES are added.
    service_name: str | None = None
    # Spans waiting for export beyond this many are dropped and counted
    # (synthmon_trace_spans_dropped_total): export never holds up a run.
    max_queue: int = Field(default=2048, ge=16)
    max_batch: int = Field(default=512, ge=1)
    flush_interval: Duration = 5.0
    # Link from alerts, /api and the status pages to a run's trace, e.g.
    # "https://tempo.example/trace/{trace_id}" (also useful with enabled = false: the
    # backend's own spans carry the run's trace id from its traceparent).
    ui_url: str | None = None

    @field_validator("ui_url")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and "{trace_id}" not in v:
            raise ValueError(
                "ui_url must contain {trace_id}, e.g. 'https://tempo.example/trace/{trace_id}'"
            )
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "expected an http(s) URL of the OTLP receiver, e.g. 'http://otel-collector:4318'"
                )
        return v

    @model_validator(mode="after")
    def _client_pair(self) -> TracingSettings:
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("client_certificate and client_key go together (mTLS)")
        if self.max_batch > self.max_queue:
            raise ValueError("max_batch must not exceed max_queue")
        return self

    def trace_url(self, trace_id: str | None) -> str | None:
        """The link to `trace_id` in the tracing UI, when `ui_url` is set."""
        if self.ui_url is None or not trace_id:
            return None
        return self.ui_url.replace("{trace_id}", trace_id)
