"""The tracing hook on its own, fed the records the runtime gives hooks: what the model
wrappers did (retries, fallbacks, a route, changed parameters) becomes span events, time to
first token an attribute, a failed tool call an error; secrets are redacted from errors and
content; an abandoned run is eventually forgotten."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import StatusCode

from cupola.exceptions import ProviderError
from cupola.hooks import ModelCall, ModelEnd, RunEnd, RunInfo, ToolRun
from cupola.models.base import (
    Adjustment,
    CallReport,
    ChatMessage,
    Finish,
    ModelRequest,
    ToolCall,
    Usage,
)
from cupola.secrets import SecretRegistry
from cupola.telemetry import TracingHooks, tracing

SECRET = "hunter2-very-secret"


def hook(capture: bool = False) -> tuple[TracingHooks, list[ReadableSpan]]:
    finished: list[ReadableSpan] = []
    registry = SecretRegistry()
    registry.add(SECRET)
    return (
        TracingHooks(
            finished.append,
            resource=Resource.create({"service.name": "cupola"}),
            ids=RandomIdGenerator(),
            providers={"gpt": "azure_openai"},
            redact=registry.redact,
            capture_content=capture,
        ),
        finished,
    )


def info(response_id: str = "resp_1") -> RunInfo:
    return RunInfo(
        response_id=response_id,
        project="default",
        api="responses",
        model="gpt",
        agent="helper",
        conversation_id="conv_1",
        stream=True,
        background=False,
        store=True,
        input_items=({"type": "message", "role": "user", "content": f"key {SECRET}"},),
        agent_version="3",
    )


async def test_wrappers_become_events_and_ttft_an_attribute() -> None:
    h, finished = hook()
    run = info()
    await h.on_run_start(run)
    request = ModelRequest(messages=(ChatMessage("user", "hi"),), temperature=0.2, seed=7)
    call = ModelCall(run, 0, request, time.perf_counter())
    await h.on_model_start(call)
    report = CallReport(
        deployment="backup",
        attempts=4,
        failed_over=("gpt",),
        adjustments=(Adjustment("temperature", "dropped", "not supported"),),
        route="backup",
        route_reason="cheapest",
    )
    finish = Finish("stop", Usage(12, 3, cached_tokens=5), model="gpt-4o-2024", report=report)
    await h.on_model_end(call, ModelEnd(finish, None, 40.0, first_token_ms=12.5))
    await h.on_run_end(run, RunEnd("completed", (), Usage(12, 3), (report,)))
    chat, root = finished
    a = dict(chat.attributes or {})
    assert a["gen_ai.provider.name"] == "azure.ai.openai"
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.seed"] == 7
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.0125)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 5
    assert a["gen_ai.response.model"] == "gpt-4o-2024"
    assert a["cupola.deployment.served"] == "backup" and a["cupola.attempts"] == 4
    events = {e.name: dict(e.attributes or {}) for e in chat.events}
    assert events["cupola.retry"] == {"cupola.retries": 2}
    assert events["cupola.fallback"] == {"cupola.deployment.failed": "gpt"}
    assert events["cupola.route"]["cupola.route.reason"] == "cheapest"
    assert events["cupola.parameter_adjusted"]["cupola.param"] == "temperature"
    r = dict(root.attributes or {})
    assert r["gen_ai.agent.id"] == "helper:3" and r["gen_ai.agent.version"] == "3"
    assert r["gen_ai.conversation.id"] == "conv_1"
    assert root.parent is None and chat.parent is not None
    assert chat.parent.span_id == root.context.span_id
    assert chat.context.trace_id == root.context.trace_id
    assert "gen_ai.input.messages" not in r  # capture off


async def test_errors_are_typed_and_redacted() -> None:
    h, finished = hook(capture=True)
    run = info()
    await h.on_run_start(run)
    call = ModelCall(run, 0, ModelRequest(messages=()), time.perf_counter())
    await h.on_model_start(call)
    error = ProviderError(f"upstream refused key {SECRET}", code="rate_limited")
    await h.on_model_end(call, ModelEnd(None, error, 5.0))
    tool = ToolRun(run, ToolCall("call_1", "lookup", f'{{"q": "{SECRET}"}}'))
    await h.on_tool_start(tool)
    await h.on_tool_end(tool, {"type": "mcp_call", "server_label": "s", "error": SECRET})
    await h.on_run_end(run, RunEnd("failed", (), Usage(), (), error=error))
    chat, tool_span, root = finished
    for span in (chat, root):
        assert span.status.status_code == StatusCode.ERROR
        assert dict(span.attributes or {})["error.type"] == "rate_limited"
    t = dict(tool_span.attributes or {})
    assert t["error.type"] == "tool_error" and t["cupola.tool.server_label"] == "s"
    assert tool_span.status.status_code == StatusCode.ERROR
    everything = str([(s.attributes, s.status.description, s.events) for s in finished])
    assert SECRET not in everything and "***" in everything


async def test_an_abandoned_run_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "MAX_OPEN_RUNS", 2)
    h, finished = hook()
    for n in range(3):
        await h.on_run_start(info(f"resp_{n}"))
    await h.on_run_end(info("resp_0"), RunEnd("completed", (), Usage(), ()))
    assert finished == []  # resp_0 was dropped to make room
    await h.on_run_end(info("resp_2"), RunEnd("completed", (), Usage(), ()))
    assert len(finished) == 1
