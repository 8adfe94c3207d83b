"""The openai SDK against a live cupola: Responses create/stream/retrieve/delete/input_items."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from live_server import LiveServer
from spec import assert_valid_event, assert_valid_response

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="unused-on-loopback", max_retries=0)


def raw_sse(server: LiveServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming request and return every SSE event's JSON, in order."""
    events = []
    with httpx.stream("POST", f"{server.openai_url}/responses", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_create_returns_a_spec_valid_completed_response(
    server: LiveServer, client: openai.OpenAI
) -> None:
    response = client.responses.create(model="echo", input="Hello there")
    assert isinstance(response, Response)
    assert response.status == "completed"
    assert response.output_text == "user: Hello there"
    assert response.usage is not None and response.usage.total_tokens > 0
    raw = httpx.get(f"{server.openai_url}/responses/{response.id}").json()
    assert_valid_response(raw)
    assert raw["completed_at"] >= raw["created_at"]


def test_plain_openai_clients_use_the_v1_alias(server: LiveServer) -> None:
    plain = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    response = plain.responses.create(model="echo", input="via alias", instructions="Be brief.")
    assert response.output_text == "system: Be brief.\nuser: via alias"
    assert response.instructions == "Be brief."


def test_stream_emits_spec_events_in_order(server: LiveServer) -> None:
    events = raw_sse(server, {"model": "echo", "input": "one two three"})
    types = [e["type"] for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "user: one two three"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        assert_valid_event(event)
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "user: one two three"


def test_sdk_stream_helper_assembles_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="echo", input="streamed") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == "user: streamed"
    assert final.output_text == "user: streamed"
    assert final.status == "completed"


def test_function_tool_round_trip(server: LiveServer, client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="weather-bot", input="What is the weather in Tokyo?", tools=[WEATHER_TOOL]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Tokyo"}
    assert_valid_response(httpx.get(f"{server.openai_url}/responses/{first.id}").json())

    second = client.responses.create(
        model="weather-bot",
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],
        input=[
            {
                "type": "function_call_output",
                "call_id": calls[0].call_id,
                "output": json.dumps({"city": "Tokyo", "temperature_c": 20}),
            }
        ],
    )
    assert second.output_text == "It is sunny in Tokyo, twenty degrees."
    assert second.previous_response_id == first.id


def test_streamed_function_call_arguments(server: LiveServer) -> None:
    events = raw_sse(
        server,
        {"model": "weather-bot", "input": "weather in Tokyo?", "tools": [WEATHER_TOOL]},
    )
    for event in events:
        assert_valid_event(event)
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert len(done) == 1 and "".join(deltas) == done[0]["arguments"]
    assert json.loads(done[0]["arguments"]) == {"city": "Tokyo"}


def test_previous_response_id_carries_history(client: openai.OpenAI) -> None:
    first = client.responses.create(model="echo", input="first turn")
    second = client.responses.create(
        model="echo", input="second turn", previous_response_id=first.id
    )
    lines = second.output_text.splitlines()
    assert lines == ["user: first turn", "assistant: user: first turn", "user: second turn"]


def test_retrieve_input_items_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(
        model="echo",
        input=[
            {"role": "user", "content": "a"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "b"}]},
            {"role": "user", "content": "c"},
        ],
        metadata={"purpose": "test"},
    )
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    assert fetched.metadata == {"purpose": "test"}

    items = client.responses.input_items.list(created.id, order="asc")
    assert [i.content[0].text for i in items.data] == ["a", "b", "c"]  # type: ignore[union-attr]
    page = client.responses.input_items.list(created.id, limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    every = [i.id for i in client.responses.input_items.list(created.id, limit=1)]
    assert len(every) == 3  # auto-pagination walks all pages

    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_store_false_is_not_retrievable(client: openai.OpenAI) -> None:
    response = client.responses.create(model="echo", input="ephemeral", store=False)
    assert response.output_text == "user: ephemeral"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_max_output_tokens_ends_incomplete(server: LiveServer, client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="echo", input="many words in this input here", max_output_tokens=2
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "user: many "
    assert_valid_response(httpx.get(f"{server.openai_url}/responses/{response.id}").json())


def test_model_failure_ends_the_response_as_failed(
    server: LiveServer, client: openai.OpenAI
) -> None:
    response = client.responses.create(model="unreachable", input="hello?")
    assert response.status == "failed"
    assert response.error is not None and "unreachable" in response.error.message
    assert response.output == []
    assert_valid_response(httpx.get(f"{server.openai_url}/responses/{response.id}").json())

    events = raw_sse(server, {"model": "unreachable", "input": "hello?"})
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    for event in events:
        assert_valid_event(event)


def test_background_response_completes_and_cancel_rules(client: openai.OpenAI) -> None:
    started = client.responses.create(model="echo", input="later", background=True)
    assert started.status == "queued"
    deadline = time.monotonic() + 10
    current = client.responses.retrieve(started.id)
    while current.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        current = client.responses.retrieve(started.id)
    assert current.status == "completed" and current.output_text == "user: later"
    assert client.responses.cancel(started.id).status == "completed"

    foreground = client.responses.create(model="echo", input="now")
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.cancel(foreground.id)
