"""Writing finished spans to cupola's store: an OpenTelemetry ``SpanExporter`` that a
``BatchSpanProcessor`` calls on its own thread, so the request path never waits on it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode

from cupola.store.traces import SpanRecord, TraceStore

log = logging.getLogger("cupola.telemetry")

_STATUS = {StatusCode.OK: "ok", StatusCode.ERROR: "error", StatusCode.UNSET: "unset"}


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _text(attributes: dict[str, Any], key: str, size: int) -> str | None:
    value = attributes.get(key)
    return value[:size] if isinstance(value, str) else None


def span_record(span: ReadableSpan, default_project: str) -> SpanRecord:
    """A finished span as the store keeps it."""
    context = span.context
    assert context is not None  # an SDK span always has one
    attributes = dict(span.attributes or {})  # sequences stay tuples: orjson writes lists
    operation = _text(attributes, gen_ai.GEN_AI_OPERATION_NAME, 32)
    run = operation == "invoke_agent"
    outcome = attributes.get("cupola.run.status") if run else attributes.get("cupola.tool.outcome")
    start = span.start_time or 0
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
        project=_text(attributes, "cupola.project", 64) or default_project,
        name=span.name[:256],
        kind=span.kind.name.lower(),
        operation=operation,
        start_ns=start,
        end_ns=span.end_time or start,
        status=_STATUS.get(span.status.status_code, "unset"),
        outcome=outcome[:16] if isinstance(outcome, str) else None,
        error_type=_text(attributes, ERROR_TYPE, 128),
        response_id=_text(attributes, gen_ai.GEN_AI_RESPONSE_ID, 64) if run else None,
        conversation_id=_text(attributes, gen_ai.GEN_AI_CONVERSATION_ID, 64) if run else None,
        agent_name=_text(attributes, gen_ai.GEN_AI_AGENT_NAME, 64) if run else None,
        agent_version=_text(attributes, gen_ai.GEN_AI_AGENT_VERSION, 32) if run else None,
        attributes=attributes,
        events=[
            {
                "name": event.name,
                "time_ns": event.timestamp,
                "attributes": {k: _value(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    )


class StoreSpanExporter(SpanExporter):
    """Inserts each batch of finished spans into the ``spans`` table in one transaction
    (through the store's write path: on SQLite it takes the single-writer lock the batching
    writer uses, so the two never race)."""

    def __init__(self, store: TraceStore, default_project: str) -> None:
        self.store = store
        self.default_project = default_project

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.insert_spans_sync([span_record(s, self.default_project) for s in spans])
        except Exception:  # the database refused the batch: these spans are lost, say so
            log.exception("could not store %d spans", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the store is closed by its owner."""
