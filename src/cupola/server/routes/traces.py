"""``/traces``: the traces of runs, as cupola.telemetry stored them (docs/observability.md).

- ``GET /traces``: the runs (their ``invoke_agent`` spans), most recent first, filtered by
  agent, agent version, conversation, response, status and a time window;
- ``GET /traces/{trace_id}``: a trace with every stored span;
- ``GET /openai/v1/responses/{response_id}/trace``: the trace of a response.

Spans are written in batches a moment (``telemetry.export_delay_seconds``) after they end.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.exceptions import UserError
from cupola.server.http import JSONResponse, query_int
from cupola.server.openapi import LIMIT, Query, api
from cupola.server.services import Services
from cupola.store.traces import RunFilter, SpanRecord

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
STATUSES = ("completed", "incomplete", "failed", "cancelled")
TRACE_ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}

FILTERS = (
    Query("agent_name", {"type": "string"}, "Only runs of this agent."),
    Query("agent_version", {"type": "string"}, "Only runs of this agent version."),
    Query("conversation_id", {"type": "string"}, "Only runs in this conversation."),
    Query("response_id", {"type": "string"}, "Only the run of this response."),
    Query("status", {"type": "string", "enum": list(STATUSES)}, "Only runs that ended so."),
    Query("start_time", {"type": "number"}, "Runs that started at or after (Unix seconds)."),
    Query("end_time", {"type": "number"}, "Runs that started before (Unix seconds)."),
    LIMIT,
    Query("after", {"type": "string"}, "A cursor: the last_id (a run's span id) of a page."),
)


class SpanStatus(BaseModel):
    code: Literal["ok", "error", "unset"]
    message: str | None = None


class SpanObject(BaseModel):
    """One span: OpenTelemetry's fields, with ids in hex."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    operation: str | None
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    status: SpanStatus
    outcome: str | None
    error_type: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]


class TraceObject(BaseModel):
    """A trace and its spans, by start time."""

    object: Literal["trace"]
    id: str
    spans: list[SpanObject]


class AgentRef(BaseModel):
    name: str
    version: str | None


class RunUsage(BaseModel):
    input_tokens: int
    output_tokens: int


class TraceSummary(BaseModel):
    """One run in the traces list: its trace id, its ``invoke_agent`` span's id, and what
    the span says of the run."""

    object: Literal["trace.run"]
    id: str
    """The trace id."""
    span_id: str
    """The run's span: the cursor the list pages with."""
    response_id: str | None
    conversation_id: str | None
    agent: AgentRef | None
    model: str | None
    api: str | None
    status: str | None
    error_type: str | None
    start_time_unix_nano: int
    duration_ms: float
    usage: RunUsage


class TraceList(BaseModel):
    object: Literal["list"]
    data: list[TraceSummary]
    first_id: str | None
    last_id: str | None
    has_more: bool


def span_object(span: SpanRecord) -> dict[str, Any]:
    status = span.status if span.status in ("ok", "error") else "unset"
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_id,
        "name": span.name,
        "kind": span.kind,
        "operation": span.operation,
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "duration_ms": round((span.end_ns - span.start_ns) / 1e6, 3),
        "status": {"code": status},
        "outcome": span.outcome,
        "error_type": span.error_type,
        "attributes": span.attributes,
        "events": span.events,
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def summary_object(span: SpanRecord) -> dict[str, Any]:
    attributes = span.attributes
    agent = (
        {"name": span.agent_name, "version": span.agent_version}
        if span.agent_name is not None
        else None
    )
    return {
        "object": "trace.run",
        "id": span.trace_id,
        "span_id": span.span_id,
        "response_id": span.response_id,
        "conversation_id": span.conversation_id,
        "agent": agent,
        "model": attributes.get("gen_ai.request.model"),
        "api": attributes.get("cupola.api"),
        "status": span.outcome,
        "error_type": span.error_type,
        "start_time_unix_nano": span.start_ns,
        "duration_ms": round((span.end_ns - span.start_ns) / 1e6, 3),
        "usage": {
            "input_tokens": _int(attributes.get("gen_ai.usage.input_tokens")),
            "output_tokens": _int(attributes.get("gen_ai.usage.output_tokens")),
        },
    }


def _seconds(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{name} must be a Unix time in seconds", param=name) from None
    if not 0 <= value < 1e11:
        raise UserError(f"{name} must be a Unix time in seconds", param=name)
    return int(value * 1e9)


def run_filter(request: Request) -> RunFilter:
    """The list's filters from the query (a bad one is a 400)."""
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise UserError(f"status must be one of {', '.join(STATUSES)}", param="status")
    return RunFilter(
        agent_name=q.get("agent_name") or None,
        agent_version=q.get("agent_version") or None,
        conversation_id=q.get("conversation_id") or None,
        response_id=q.get("response_id") or None,
        outcome=status,
        start_ns=_seconds(request, "start_time"),
        end_ns=_seconds(request, "end_time"),
    )


def _trace_id(request: Request) -> str:
    trace_id = str(request.path_params["trace_id"]).lower()
    if not _TRACE_ID.match(trace_id):
        raise UserError("a trace id is 32 hexadecimal digits", param="trace_id")
    return trace_id


def routes(s: Services) -> list[Route]:
    """The project's ``/traces`` routes."""

    @api(response=TraceList, query=FILTERS, summary="List the runs' traces.")
    async def list_traces(request: Request) -> Response:
        project = s.project(request)
        where = run_filter(request)
        limit = query_int(request, "limit", 20)
        after = request.query_params.get("after") or None
        if after is not None and not _SPAN_ID.match(after):
            raise UserError("after must be a run's span_id (16 hexadecimal digits)", param="after")
        page = await s.store.list_runs(project, where, limit=limit, after=after)
        data = [summary_object(span) for span in page.data]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["span_id"] if data else None,
                "last_id": data[-1]["span_id"] if data else None,
                "has_more": page.has_more,
            }
        )

    @api(response=TraceObject, path={"trace_id": TRACE_ID_SCHEMA}, summary="Get a trace.")
    async def get_trace(request: Request) -> Response:
        project = s.project(request)
        trace_id = _trace_id(request)
        found = await s.store.get_trace(project, trace_id)
        return JSONResponse(
            {"object": "trace", "id": trace_id, "spans": [span_object(x) for x in found]}
        )

    return [
        Route("/traces", list_traces, methods=["GET"]),
        Route("/traces/{trace_id}", get_trace, methods=["GET"]),
    ]


def response_routes(s: Services) -> list[Route]:
    """``/responses/{response_id}/trace``, for the OpenAI-compatible mount."""

    @api(response=TraceObject, summary="Get the trace of a response.")
    async def response_trace(request: Request) -> Response:
        project = s.project(request)
        trace_id = await s.store.trace_id_of_response(project, request.path_params["response_id"])
        found = await s.store.get_trace(project, trace_id)
        return JSONResponse(
            {"object": "trace", "id": trace_id, "spans": [span_object(x) for x in found]}
        )

    return [Route("/responses/{response_id}/trace", response_trace, methods=["GET"])]
