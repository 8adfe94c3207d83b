"""``telemetry``: traces of every run and their export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from cupola.settings.section import Section as _Section


class TelemetrySettings(_Section):
    """Traces of every run (OpenTelemetry, GenAI semantic conventions): kept in cupola's own
    store and, when an endpoint is set, exported over OTLP (docs/observability.md)."""

    enabled: bool = True
    """Trace every run: an ``invoke_agent`` span, a ``chat`` span per model call, an
    ``execute_tool`` span per server-side tool call."""
    capture_content: bool = False
    """Also record message content, tool arguments and tool results in spans (the
    conventions' opt-in). Connection secrets are redacted from spans either way."""
    store: bool = True
    """Keep spans in cupola's database, for the traces API (``/traces``)."""
    retention_days: float = Field(default=14.0, ge=0)
    """Stored spans older than this are deleted (checked at start-up and hourly); ``0`` keeps
    them forever."""
    export_delay_seconds: float = Field(default=1.0, gt=0, le=60)
    """Finished spans are written (and exported) in batches at most this long after they end,
    off the request path."""
    otlp_endpoint: str | None = None
    """An OTLP collector to export spans to as well (Jaeger, Tempo, an OpenTelemetry
    Collector, Azure Monitor's, Langfuse's, Phoenix's ...): ``http://host:4317`` for gRPC, the
    base URL ``http://host:4318`` for HTTP (``/v1/traces`` is appended unless the URL ends with
    it). Unset: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT``;
    neither set: no export."""
    otlp_protocol: Literal["grpc", "http/protobuf"] | None = None
    """How to reach the collector. Unset: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else
    ``OTEL_EXPORTER_OTLP_PROTOCOL``, else ``http/protobuf``."""
    otlp_headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with every export (a collector's API key: write ``${VAR}``). Empty: the
    SDK reads ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS`` (as it
    reads the other ``OTEL_EXPORTER_OTLP_*`` variables: certificate, timeout, compression)."""

    @property
    def otlp_http_url(self) -> str | None:
        """The full URL the HTTP exporter posts to."""
        if not self.otlp_endpoint:
            return None
        url = self.otlp_endpoint.rstrip("/")
        return url if url.endswith("/v1/traces") else url + "/v1/traces"


def otlp_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The ``telemetry`` fields the standard OTLP variables give (the traces-specific ones
    first), for fields cupola.yaml leaves unset."""
    found: dict[str, str] = {}
    for field, names in (
        ("otlp_endpoint", ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")),
        ("otlp_protocol", ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")),
    ):
        for name in names:
            if env.get(name):
                found[field] = env[name].strip()
                break
    return found
