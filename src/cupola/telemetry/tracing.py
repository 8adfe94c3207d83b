"""The tracing hook: one OpenTelemetry trace per run, named and attributed by the GenAI
semantic conventions.

Per run: an ``invoke_agent`` span (kind internal), and under it, in time order, a ``chat``
span per model call (kind client) and an ``execute_tool`` span per server-side tool call.
Spans are recorded here as plain data (inline, in the run's task) and handed, once ended, to
the span processors as SDK ``ReadableSpan`` objects; the processors write and export them in
batches on their own threads. Content (messages, tool arguments and results)
is recorded only with ``capture_content``; every string that does go into a span is passed
through the secrets registry's redaction first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)
from opentelemetry.util.types import AttributeValue

from cupola import __version__
from cupola.domain.records import Item
from cupola.exceptions import CupolaError
from cupola.hooks import ModelCall, ModelEnd, RunEnd, RunHooks, RunInfo, ToolRun
from cupola.models.base import CallReport, ChatMessage, ModelRequest

PROVIDERS = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "foundry_agent": "azure.ai.agents",
}
"""cupola's deployment providers as ``gen_ai.provider.name`` values; the others are
``cupola.<provider>`` (``cupola.scripted``, ``cupola.embedded``, ``cupola.router``)."""

TOOL_TYPES = {
    "mcp_call": "extension",
    "openapi_call": "extension",
    "code_interpreter_call": "extension",
    "file_search_call": "datastore",
    "function_call_output": "function",
}
"""The output item a tool produced, as ``gen_ai.tool.type`` (``extension`` otherwise)."""

REQUEST_PARAMS: tuple[tuple[str, str], ...] = (
    ("temperature", gen_ai.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", gen_ai.GEN_AI_REQUEST_TOP_P),
    ("max_output_tokens", gen_ai.GEN_AI_REQUEST_MAX_TOKENS),
    ("presence_penalty", gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("frequency_penalty", gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("seed", gen_ai.GEN_AI_REQUEST_SEED),
)


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
MAX_OPEN_RUNS = 100_000
"""Runs recorded at once; beyond it the oldest open run is dropped (its end never came)."""


def provider_name(provider: str) -> str:
    """The ``gen_ai.provider.name`` of a cupola deployment provider."""
    return PROVIDERS.get(provider, f"cupola.{provider}")


def error_type(error: BaseException | None) -> str:
    """``error.type``: a cupola error's code (``script_mismatch``, ``rate_limited`` ...),
    else the exception's class name."""
    if isinstance(error, CupolaError) and error.code:
        return error.code
    return type(error).__name__ if error is not None else "_OTHER"


@dataclass(slots=True)
class Draft:
    """A span being recorded: plain data until it ends (cheaper than an SDK span, whose
    locks and per-attribute checks cost a run more than the rest of its tracing)."""

    name: str
    kind: SpanKind
    span_id: int
    start: int
    attributes: dict[str, AttributeValue]
    events: list[Event] = field(default_factory=list)
    status: Status = field(default_factory=Status)

    def add_event(self, name: str, attributes: dict[str, AttributeValue]) -> None:
        self.events.append(Event(name, attributes, time.time_ns(), limit=None))


@dataclass(slots=True)
class _Run:
    trace_id: int
    parent: SpanContext | None
    span: Draft
    context: SpanContext
    provider: str
    chats: dict[int, Draft] = field(default_factory=dict)
    tools: dict[str, Draft] = field(default_factory=dict)


class TracingHooks(RunHooks):
    """Records the spans of every run (see the module doc) and hands each finished span to
    ``sink`` (the processors' ``on_end``). ``providers`` maps a deployment name to its
    provider (``openai``, ``scripted`` ...); ``redact`` removes secrets from a string."""

    def __init__(
        self,
        sink: Callable[[ReadableSpan], None],
        *,
        resource: Resource,
        ids: IdGenerator,
        providers: Mapping[str, str],
        redact: Callable[[str], str],
        capture_content: bool = False,
    ) -> None:
        self.sink = sink
        self.resource = resource
        self.ids = ids
        self.scope = InstrumentationScope("cupola", __version__)
        self.providers = dict(providers)
        self.redact = redact
        self.capture_content = capture_content
        self._runs: dict[str, _Run] = {}

    def _json(self, value: Any) -> str:
        return self.redact(orjson.dumps(value, default=str).decode())

    def _draft(self, name: str, kind: SpanKind, attributes: dict[str, AttributeValue]) -> Draft:
        return Draft(name, kind, self.ids.generate_span_id(), time.time_ns(), attributes)

    def _end(self, state: _Run, draft: Draft, parent: SpanContext | None) -> None:
        """Hand a finished span to the processors."""
        context = SpanContext(state.trace_id, draft.span_id, False, _SAMPLED)
        self.sink(
            ReadableSpan(
                draft.name,
                context=context,
                parent=parent,
                resource=self.resource,
                attributes=draft.attributes,
                events=draft.events,
                kind=draft.kind,
                status=draft.status,
                start_time=draft.start,
                end_time=time.time_ns(),
                instrumentation_scope=self.scope,
            )
        )

    def _fail(self, draft: Draft, error: BaseException | None, kind: str | None = None) -> None:
        """Mark a span failed: ``error.type``, the status (its redacted message) and an
        ``exception`` event without a stack trace (frames may hold secrets)."""
        kind = kind or error_type(error)
        message = self.redact(str(error)) if error is not None else kind
        draft.attributes[ERROR_TYPE] = kind
        draft.status = Status(StatusCode.ERROR, message)
        if error is not None:
            draft.add_event(
                "exception",
                {"exception.type": type(error).__name__, "exception.message": message},
            )

    # -- the run ------------------------------------------------------------------------

    async def on_run_start(self, run: RunInfo) -> None:
        provider = provider_name(self.providers.get(run.model, "unknown"))
        attributes: dict[str, AttributeValue] = {
            gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent",
            gen_ai.GEN_AI_PROVIDER_NAME: provider,
            gen_ai.GEN_AI_REQUEST_MODEL: run.model,
            gen_ai.GEN_AI_RESPONSE_ID: run.response_id,
            gen_ai.GEN_AI_REQUEST_STREAM: run.stream,
            "cupola.project": run.project,
            "cupola.api": run.api,
            "cupola.deployment": run.model,
            "cupola.background": run.background,
            "cupola.store": run.store,
        }
        if run.agent:
            attributes[gen_ai.GEN_AI_AGENT_NAME] = run.agent
            attributes[gen_ai.GEN_AI_AGENT_ID] = (
                f"{run.agent}:{run.agent_version}" if run.agent_version else run.agent
            )
            if run.agent_version:
                attributes[gen_ai.GEN_AI_AGENT_VERSION] = run.agent_version
        if run.conversation_id:
            attributes[gen_ai.GEN_AI_CONVERSATION_ID] = run.conversation_id
        if self.capture_content:
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = self._json(list(run.input_items))
        name = f"invoke_agent {run.agent}" if run.agent else "invoke_agent"
        caller = get_current_span().get_span_context()  # a caller's traceparent, continued
        parent = caller if caller.is_valid else None
        trace_id = parent.trace_id if parent is not None else self.ids.generate_trace_id()
        draft = self._draft(name, SpanKind.INTERNAL, attributes)
        context = SpanContext(trace_id, draft.span_id, False, _SAMPLED)
        if len(self._runs) >= MAX_OPEN_RUNS:  # a run whose end never came: forget the oldest
            self._runs.pop(next(iter(self._runs)))
        self._runs[run.response_id] = _Run(trace_id, parent, draft, context, provider)

    async def on_run_end(self, run: RunInfo, end: RunEnd) -> None:
        state = self._runs.pop(run.response_id, None)
        if state is None:
            return
        for draft in (*state.chats.values(), *state.tools.values()):  # cut short
            draft.attributes[ERROR_TYPE] = "cancelled" if end.status == "cancelled" else "ended"
            self._end(state, draft, state.context)
        draft = state.span
        draft.attributes.update(
            {
                "cupola.run.status": end.status,
                "cupola.run.model_calls": len(end.reports),
                gen_ai.GEN_AI_USAGE_INPUT_TOKENS: end.usage.input_tokens,
                gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: end.usage.output_tokens,
            }
        )
        if self.capture_content:
            draft.attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = self._json(list(end.output))
        if end.status == "failed":
            self._fail(draft, end.error, None if end.error is not None else "failed")
        self._end(state, draft, state.parent)

    # -- model calls --------------------------------------------------------------------

    async def on_model_start(self, call: ModelCall) -> None:
        state = self._runs.get(call.run.response_id)
        if state is None:
            return
        request = call.request
        attributes: dict[str, AttributeValue] = {
            gen_ai.GEN_AI_OPERATION_NAME: "chat",
            gen_ai.GEN_AI_PROVIDER_NAME: state.provider,
            gen_ai.GEN_AI_REQUEST_MODEL: call.run.model,
            gen_ai.GEN_AI_REQUEST_STREAM: call.run.stream,
            "cupola.deployment": call.run.model,
            "cupola.call.index": call.index,
        }
        for name, key in REQUEST_PARAMS:
            value = getattr(request, name)
            if value is not None:
                attributes[key] = value
        if request.stop:
            attributes[gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES] = list(request.stop)
        if request.tools:
            attributes["cupola.request.tools"] = [t.name for t in request.tools]
        if self.capture_content:
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = self._json(_messages(request))
        state.chats[call.index] = self._draft(f"chat {call.run.model}", SpanKind.CLIENT, attributes)

    async def on_model_end(self, call: ModelCall, end: ModelEnd) -> None:
        state = self._runs.get(call.run.response_id)
        draft = state.chats.pop(call.index, None) if state is not None else None
        if state is None or draft is None:
            return
        attributes = draft.attributes
        if end.first_token_ms is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = end.first_token_ms / 1e3
        finish = end.finish
        if finish is None:
            self._fail(draft, end.error)
            self._end(state, draft, state.context)
            return
        usage = finish.usage
        attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = [finish.reason]
        attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
        attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        if usage.cached_tokens:
            attributes[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens
        if usage.reasoning_tokens:
            attributes[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        if finish.model:
            attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = finish.model
        _report(draft, finish.report)
        self._end(state, draft, state.context)

    # -- tool calls ---------------------------------------------------------------------

    async def on_tool_start(self, tool: ToolRun) -> None:
        state = self._runs.get(tool.run.response_id)
        if state is None:
            return
        attributes: dict[str, AttributeValue] = {
            gen_ai.GEN_AI_OPERATION_NAME: "execute_tool",
            gen_ai.GEN_AI_TOOL_NAME: tool.call.name,
            gen_ai.GEN_AI_TOOL_CALL_ID: tool.call.call_id,
            "cupola.tool.approved": tool.approved,
        }
        if self.capture_content:
            attributes[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] = self.redact(tool.call.arguments)
        state.tools[tool.call.call_id] = self._draft(
            f"execute_tool {tool.call.name}", SpanKind.INTERNAL, attributes
        )

    async def on_tool_end(self, tool: ToolRun, item: Item) -> None:
        state = self._runs.get(tool.run.response_id)
        draft = state.tools.pop(tool.call.call_id, None) if state is not None else None
        if state is None or draft is None:
            return
        kind = str(item.get("type", ""))
        outcome = str(item.get("status") or ("failed" if item.get("error") else "completed"))
        attributes = draft.attributes
        attributes[gen_ai.GEN_AI_TOOL_TYPE] = TOOL_TYPES.get(kind, "extension")
        attributes["cupola.tool.item_type"] = kind
        attributes["cupola.tool.outcome"] = outcome
        if isinstance(item.get("server_label"), str):
            attributes["cupola.tool.server_label"] = item["server_label"]
        if self.capture_content:
            result = item.get("output", item.get("results"))
            if result is not None:
                text = result if isinstance(result, str) else self._json(result)
                attributes[gen_ai.GEN_AI_TOOL_CALL_RESULT] = self.redact(text)
        error = item.get("error")
        if error or outcome in ("failed", "incomplete"):
            attributes[ERROR_TYPE] = "tool_error"
            detail = error if isinstance(error, str) else outcome
            draft.status = Status(StatusCode.ERROR, self.redact(detail))
        self._end(state, draft, state.context)


def _report(span: Draft, report: CallReport) -> None:
    """What the wrappers did to serve the call: the serving deployment and the attempts as
    attributes; each retry, fallback, route and parameter change as an event."""
    if report.deployment:
        span.attributes["cupola.deployment.served"] = report.deployment
    span.attributes["cupola.attempts"] = report.attempts
    retries = report.attempts - 1 - len(report.failed_over)
    if retries > 0:
        span.add_event("cupola.retry", {"cupola.retries": retries})
    for tried in report.failed_over:
        span.add_event("cupola.fallback", {"cupola.deployment.failed": tried})
    if report.route is not None:
        span.attributes["cupola.route.deployment"] = report.route
        span.add_event(
            "cupola.route",
            {"cupola.deployment": report.route, "cupola.route.reason": report.route_reason or ""},
        )
    for adjustment in report.adjustments:
        span.add_event(
            "cupola.parameter_adjusted",
            {
                "cupola.param": adjustment.param,
                "cupola.action": adjustment.action,
                "cupola.detail": adjustment.detail,
            },
        )


def _messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The request's messages in the conventions' shape: role and parts."""
    return [_message(m) for m in request.messages]


def _message(message: ChatMessage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        )
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    for call in message.tool_calls:
        part = {"type": "tool_call", "id": call.call_id, "name": call.name}
        parts.append({**part, "arguments": call.arguments})
    return {"role": message.role, "parts": parts}
