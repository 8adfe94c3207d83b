"""Traces of every protocol on a live server (in process): Responses (stored, streamed,
failed, in a conversation, of an agent), Chat Completions and Anthropic Messages; the
traces API's filters, paging and 4xx; content off by default; OTLP over HTTP to a real
receiver; the retention purge; telemetry off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from otlp_receiver import Received, attributes, http_receiver

import live_server
from cupola.settings import DeploymentConfig, ScriptStep
from cupola.store.traces import SpanRecord
from cupola.telemetry import Telemetry
from live_server import LiveServer, make_settings, start_server

PICKY = DeploymentConfig(
    name="picky", provider="scripted", mode="script", script=[ScriptStep(match="^only$")]
)


@pytest.fixture(scope="module")
def otlp() -> Iterator[tuple[str, Received]]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced(database_url: str, otlp: tuple[str, Received]) -> Iterator[LiveServer]:
    settings = make_settings(
        database_url,
        deployments=[*live_server.test_deployments(), PICKY],
        telemetry={"export_delay_seconds": 0.1, "otlp_endpoint": otlp[0]},
    )
    live = start_server(settings)
    yield live
    live.stop()


def telemetry(live: LiveServer) -> Telemetry:
    assert live.services.telemetry is not None
    return live.services.telemetry


def trace_of(live: LiveServer, response_id: str) -> dict[str, Any]:
    telemetry(live).force_flush()
    r = httpx.get(f"{live.openai_url}/responses/{response_id}/trace")
    assert r.status_code == 200, r.text
    trace: dict[str, Any] = r.json()
    return trace


def runs(live: LiveServer, **params: Any) -> dict[str, Any]:
    telemetry(live).force_flush()
    r = httpx.get(f"{live.project_url}/traces", params=params)
    assert r.status_code == 200, r.text
    listed: dict[str, Any] = r.json()
    return listed


def test_a_plain_response_is_a_run_and_a_chat_without_content(traced: LiveServer) -> None:
    r = httpx.post(f"{traced.openai_url}/responses", json={"model": "echo", "input": "hello"})
    assert r.status_code == 200
    trace = trace_of(traced, r.json()["id"])
    assert trace["id"] == r.headers["x-cupola-trace-id"]
    run, chat = trace["spans"]
    assert run["parent_span_id"] is None and chat["parent_span_id"] == run["span_id"]
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat["duration_ms"] >= 0 and run["duration_ms"] >= chat["duration_ms"]
    ttft = chat["attributes"]["gen_ai.response.time_to_first_chunk"]
    assert 0 <= ttft * 1000 <= chat["duration_ms"]
    for span in trace["spans"]:  # content capture is off by default
        assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(span["attributes"])
    assert "hello" not in str(trace)


def test_a_stream_carries_the_trace_id(traced: LiveServer) -> None:
    body = {"model": "echo", "input": "hi", "stream": True}
    with httpx.stream("POST", f"{traced.openai_url}/responses", json=body) as r:
        trace_id = r.headers["x-cupola-trace-id"]
        text = "".join(r.iter_text())
    assert "response.completed" in text
    listed = runs(traced, limit=5)
    assert trace_id in [t["id"] for t in listed["data"]]
    (run,) = [t for t in listed["data"] if t["id"] == trace_id]
    assert run["status"] == "completed" and run["api"] == "responses"


def test_a_failed_run_has_its_error_type(traced: LiveServer) -> None:
    r = httpx.post(f"{traced.openai_url}/responses", json={"model": "picky", "input": "other"})
    assert r.json()["status"] == "failed"
    run, chat = trace_of(traced, r.json()["id"])["spans"]
    assert run["outcome"] == "failed" and run["status"]["code"] == "error"
    assert run["error_type"] == chat["error_type"] == "script_mismatch"
    assert chat["status"]["code"] == "error"
    assert any(e["name"] == "exception" for e in chat["events"])
    failed = runs(traced, status="failed")["data"]
    assert r.json()["id"] in [t["response_id"] for t in failed]
    assert all(t["status"] == "failed" for t in failed)


def test_chat_completions_and_messages_are_traced(
    traced: LiveServer, otlp: tuple[str, Received]
) -> None:
    chat = httpx.post(
        f"{traced.openai_url}/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200, chat.text
    messages = httpx.post(
        f"{traced.url}/anthropic/v1/messages",
        json={"model": "echo", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert messages.status_code == 200, messages.text
    apis = {}
    for answer in (chat, messages):
        trace_id = answer.headers["x-cupola-trace-id"]
        telemetry(traced).force_flush()
        trace = httpx.get(f"{traced.project_url}/traces/{trace_id}").json()
        assert [s["operation"] for s in trace["spans"]] == ["invoke_agent", "chat"]
        apis[trace_id] = trace["spans"][0]["attributes"]["cupola.api"]
        exported = otlp[1].trace(trace_id, 2)
        assert sorted(s.name for s in exported) == ["chat echo", "invoke_agent"]
        assert {attributes(s)["gen_ai.operation.name"] for s in exported} == {
            "invoke_agent",
            "chat",
        }
    assert sorted(apis.values()) == ["chat.completions", "messages"]


def test_filters_by_conversation_and_agent_and_time(traced: LiveServer, unique: str) -> None:
    conv = httpx.post(f"{traced.openai_url}/conversations", json={}).json()["id"]
    r = httpx.post(
        f"{traced.openai_url}/responses",
        json={"model": "echo", "input": "hi", "conversation": conv},
    )
    assert r.status_code == 200, r.text
    agent = f"tracer-{unique}"
    created = httpx.post(
        f"{traced.project_url}/agents/{agent}/versions",
        json={"definition": {"kind": "prompt", "model": "echo", "instructions": "Be brief."}},
    )
    assert created.status_code == 200, created.text
    a = httpx.post(
        f"{traced.openai_url}/responses",
        json={"input": "hi", "agent_reference": {"type": "agent_reference", "name": agent}},
    )
    assert a.status_code == 200, a.text
    (in_conv,) = runs(traced, conversation_id=conv)["data"]
    assert in_conv["response_id"] == r.json()["id"] and in_conv["conversation_id"] == conv
    (of_agent,) = runs(traced, agent_name=agent)["data"]
    assert of_agent["response_id"] == a.json()["id"]
    assert of_agent["agent"]["name"] == agent
    spans = httpx.get(f"{traced.project_url}/traces/{of_agent['id']}").json()["spans"]
    assert spans[0]["name"] == f"invoke_agent {agent}"
    assert spans[0]["attributes"]["gen_ai.agent.name"] == agent
    assert spans[0]["attributes"]["gen_ai.agent.version"] == "1"
    started = of_agent["start_time_unix_nano"] / 1e9
    assert runs(traced, agent_name=agent, start_time=started + 1)["data"] == []
    assert runs(traced, agent_name=agent, end_time=started - 0.001)["data"] == []
    window = runs(traced, agent_name=agent, start_time=started - 1, end_time=started + 1)
    assert [t["response_id"] for t in window["data"]] == [a.json()["id"]]


def test_the_list_pages_most_recent_first(traced: LiveServer) -> None:
    ids = []
    for _ in range(3):
        r = httpx.post(f"{traced.openai_url}/responses", json={"model": "echo", "input": "x"})
        ids.append(r.json()["id"])
    first = runs(traced, limit=2)
    assert first["has_more"] and len(first["data"]) == 2
    assert [t["response_id"] for t in first["data"]] == ids[::-1][:2]
    assert first["last_id"] == first["data"][1]["span_id"]
    second = runs(traced, limit=1, after=first["last_id"])
    assert second["data"][0]["response_id"] == ids[0]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/traces?status=done", "status"),
        ("/traces?start_time=yesterday", "start_time"),
        ("/traces?after=nope", "after"),
        ("/traces?limit=0", "limit"),
        ("/traces/not-a-trace-id", "trace_id"),
    ],
)
def test_bad_queries_are_400(traced: LiveServer, path: str, param: str) -> None:
    r = httpx.get(traced.project_url + path)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_unknown_traces_are_404(traced: LiveServer) -> None:
    missing = httpx.get(f"{traced.project_url}/traces/{'ab' * 16}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    no_response = httpx.get(f"{traced.openai_url}/responses/resp_nope/trace")
    assert no_response.status_code == 404


def test_no_trace_id_where_nothing_ran(traced: LiveServer) -> None:
    assert "x-cupola-trace-id" not in httpx.get(f"{traced.project_url}/traces").headers
    bad = httpx.post(f"{traced.openai_url}/responses", json={"model": "nobody", "input": "x"})
    assert bad.status_code == 404  # no such deployment: refused before any run
    assert "x-cupola-trace-id" not in bad.headers


def _span(trace_id: str, end_ns: int) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id,
        span_id="1" * 16,
        parent_id=None,
        project="default",
        name="invoke_agent",
        kind="internal",
        operation="invoke_agent",
        start_ns=end_ns - 1000,
        end_ns=end_ns,
        status="unset",
        outcome="completed",
        response_id=f"resp_{trace_id}",
    )


def test_retention_purges_old_spans(traced: LiveServer) -> None:
    t = telemetry(traced)
    day = 86400 * 10**9
    old, new = "0f" * 16, "0e" * 16
    now = time.time_ns()
    traced.services.store.insert_spans_sync([_span(old, now - 30 * day), _span(new, now - day)])
    assert t.config.retention_days == 14
    assert t.purge() >= 1
    found = httpx.get(f"{traced.project_url}/traces/{new}")
    assert found.status_code == 200
    assert httpx.get(f"{traced.project_url}/traces/{old}").status_code == 404


def test_telemetry_off_traces_nothing(database_url: str) -> None:
    live = start_server(make_settings(database_url, telemetry={"enabled": False}))
    try:
        assert live.services.telemetry is None
        r = httpx.post(f"{live.openai_url}/responses", json={"model": "echo", "input": "hi"})
        assert r.status_code == 200 and "x-cupola-trace-id" not in r.headers
        assert httpx.get(f"{live.openai_url}/responses/{r.json()['id']}/trace").status_code == 404
    finally:
        live.stop()
