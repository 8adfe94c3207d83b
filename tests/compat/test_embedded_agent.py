"""The embedded local model behind the HTTP API: a two-turn chat and a grammar-constrained
tool call, driven by the openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from live_server import LiveServer

pytestmark = pytest.mark.embedded

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0, timeout=120)


def test_two_turn_chat(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    first = client.responses.create(
        model="local-small",
        input="Hello! My name is Ada.",
        conversation=conv.id,
        max_output_tokens=40,
    )
    second = client.responses.create(
        model="local-small", input="What is my name?", conversation=conv.id, max_output_tokens=40
    )
    for response in (first, second):
        assert response.status in ("completed", "incomplete"), response.error
        assert response.output_text.strip()
    assert first.usage is not None and second.usage is not None
    # The second turn's prompt holds the first turn, so it is longer by at least its reply.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    items = client.conversations.items.list(conv.id).data
    assert len(items) == 4


def test_weather_question_becomes_a_get_weather_call(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="local-small",
        input="What is the weather in Tokyo?",
        tools=[WEATHER_TOOL],
        temperature=0,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1, response.output
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"].lower() == "tokyo"
