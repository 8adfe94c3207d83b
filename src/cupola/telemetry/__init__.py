"""Observability: OpenTelemetry traces of every run (GenAI semantic conventions), stored in
cupola's database and exported over OTLP, as a run hook (docs/observability.md)."""

from cupola.telemetry.export import StoreSpanExporter, span_record
from cupola.telemetry.propagation import (
    TRACE_ID_HEADER,
    RequestIdGenerator,
    TraceContext,
    current_trace_id,
    extract,
)
from cupola.telemetry.setup import Telemetry, otlp_exporter
from cupola.telemetry.tracing import TracingHooks, error_type, provider_name

__all__ = [
    "TRACE_ID_HEADER",
    "RequestIdGenerator",
    "StoreSpanExporter",
    "Telemetry",
    "TraceContext",
    "TracingHooks",
    "current_trace_id",
    "error_type",
    "extract",
    "otlp_exporter",
    "provider_name",
    "span_record",
]
