"""Writing finished spans to cupola's store: an OpenTelemetry ``SpanExporter`` that a
``BatchSpanProcessor`` calls on its own thread, so the request path never waits on it."""

from __future__ import annotations

import logging
import time
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


ORPHAN_AFTER_NS = 600 * 10**9
"""A span whose local root has not ended this long after it did is stored on its own (its
root was dropped, or the run is very long): pending spans never grow without bound."""


class StoreSpanExporter(SpanExporter):
    """Stores each run as one row when its root span ends: the spans that end before it (its
    model calls, tool calls ...) wait here, in memory, until then, so a run costs one row
    and one index entry per index rather than one per span. Each batch is written in one
    transaction (through the store's write path: on SQLite it takes the single-writer lock
    the batching writer uses, so the two never race)."""

    def __init__(self, store: TraceStore, default_project: str) -> None:
        self.store = store
        self.default_project = default_project
        self._pending: dict[str, list[SpanRecord]] = {}
        """Finished spans by trace id, waiting for their local root."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        runs: list[tuple[SpanRecord, list[SpanRecord]]] = []
        for span in spans:
            record = span_record(span, self.default_project)
            if span.parent is not None and not span.parent.is_remote:
                self._pending.setdefault(record.trace_id, []).append(record)
            else:
                runs.append((record, self._descendants(record)))
        runs += self._orphans(time.time_ns() - ORPHAN_AFTER_NS)
        return self._write(runs)

    def _descendants(self, root: SpanRecord) -> list[SpanRecord]:
        """Take ``root``'s waiting descendants (a span ends before its parent, so walking
        the waiting spans newest first meets a parent before its children)."""
        waiting = self._pending.pop(root.trace_id, [])
        ids = {root.span_id}
        taken: list[SpanRecord] = []
        rest: list[SpanRecord] = []
        for record in reversed(waiting):
            if record.parent_id in ids:
                ids.add(record.span_id)
                taken.append(record)
            else:
                rest.append(record)
        if rest:  # another run of the same (continued) trace is still going
            self._pending[root.trace_id] = rest[::-1]
        taken.reverse()
        return taken

    def _orphans(self, before_ns: int) -> list[tuple[SpanRecord, list[SpanRecord]]]:
        """Waiting spans that ended before ``before_ns``, each as a row of its own."""
        out: list[tuple[SpanRecord, list[SpanRecord]]] = []
        for trace_id in list(self._pending):
            waiting = self._pending[trace_id]
            keep = [r for r in waiting if r.end_ns >= before_ns]
            out += [(r, []) for r in waiting if r.end_ns < before_ns]
            if keep:
                self._pending[trace_id] = keep
            else:
                del self._pending[trace_id]
        return out

    def _write(self, runs: list[tuple[SpanRecord, list[SpanRecord]]]) -> SpanExportResult:
        try:
            self.store.insert_runs_sync(runs)
        except Exception:  # the database refused the batch: these spans are lost, say so
            count = sum(1 + len(children) for _, children in runs)
            log.exception("could not store %d spans", count)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Store the spans still waiting for a root, each on its own (the store is closed by
        its owner, after this)."""
        self._write(self._orphans(2**63))
