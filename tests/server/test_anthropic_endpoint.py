"""``/anthropic/v1/messages`` driven by the anthropic SDK (``Anthropic`` and
``AnthropicFoundry``, as Claude Code's Foundry settings use it) against a live cupola."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
import sqlalchemy as sa

from cupola.store.tables import metadata
from live_server import LiveServer, make_settings, start_server

WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{server.url}/anthropic", api_key="x", max_retries=0)


def table_counts(server: LiveServer) -> dict[str, int]:
    """Rows per table, spans aside: a run that fails upstream is traced, as it should be."""
    with server.services.store.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
            if t.name != "spans"
        }


def sse(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
    """(event name, data) of every event of a streamed message, as sent."""
    events = []
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == name, "every event line names its data's type"
                events.append((name, data))
    return events


def test_create_returns_an_anthropic_message(
    server: LiveServer, client: anthropic.Anthropic
) -> None:
    raw = client.messages.with_raw_response.create(
        model="echo",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
    )
    assert raw.headers["x-cupola-deployment"] == "echo"
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == "echo"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "system: Be brief. /  / Be kind.\nuser: Hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 10


def test_project_route_and_max_tokens(server: LiveServer) -> None:
    sdk = anthropic.Anthropic(
        base_url=f"{server.project_url}/anthropic", api_key="x", max_retries=0
    )
    message = sdk.messages.create(
        model="echo",
        max_tokens=2,
        system="S",
        messages=[{"role": "user", "content": "one two three"}],
    )
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "system: S\n"  # type: ignore[union-attr]


def test_streaming_text(server: LiveServer, client: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": "stream these words"}]
    whole = client.messages.create(model="echo", max_tokens=100, messages=messages)
    with client.messages.stream(model="echo", max_tokens=100, messages=messages) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == whole.content[0].text  # type: ignore[union-attr]
    assert final.content[0].text == "".join(pieces)  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens

    events = sse(
        f"{server.url}/anthropic/v1/messages",
        {"model": "echo", "max_tokens": 50, "messages": messages},
    )
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_streamed_tool_use_and_tool_result_round_trip(client: anthropic.Anthropic) -> None:
    question: Any = {"role": "user", "content": "What's the weather in Tokyo?"}
    with client.messages.stream(
        model="weather-bot", max_tokens=200, messages=[question], tools=[WEATHER_TOOL]
    ) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_message()
    assert "input_json" in kinds
    assert first.stop_reason == "tool_use"
    [use] = first.content
    assert use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"city": "Tokyo"}

    answer = client.messages.create(
        model="weather-bot",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": use.id,
                        "content": [{"type": "text", "text": '{"temperature_c": 20}'}],
                    }
                ],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].text == "It is sunny in Tokyo, twenty degrees."  # type: ignore[union-attr]


def test_non_streamed_tool_use(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="weather-bot",
        max_tokens=200,
        messages=[{"role": "user", "content": "weather please"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert message.stop_reason == "tool_use"
    assert [(b.type, b.input) for b in message.content] == [("tool_use", {"city": "Tokyo"})]  # type: ignore[union-attr]


def test_a_claude_code_shaped_request(server: LiveServer) -> None:
    """What Claude Code sends: ``?beta=true``, beta headers, cached system blocks, metadata,
    thinking blocks in the history, and a streamed reply."""
    body = {
        "model": "echo",
        "max_tokens": 32000,
        "temperature": 1,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list files"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should use ls.", "signature": "sig"},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Bash",
                        "input": {"command": "ls"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.py\nb.py"},
                    {"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral"}},
                ],
            },
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            }
        ],
        "metadata": {"user_id": "user_abc"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "x-api-key": "x",
    }
    events = sse(f"{server.url}/anthropic/v1/messages?beta=true", body, headers)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == (
        'system: You are Claude Code.\nuser: list files\nassistant: call Bash({"command":"ls"})\n'
        "tool[Bash#toolu_01]: a.py / b.py\nuser: thanks"
    )
    r = httpx.post(
        f"{server.url}/anthropic/v1/messages/count_tokens?beta=true", json=body, headers=headers
    )
    assert r.status_code == 200 and r.json()["input_tokens"] > 0


def test_count_tokens_estimates_when_the_model_cannot_count(
    server: LiveServer, client: anthropic.Anthropic
) -> None:
    """`unreachable` is an OpenAI-compatible deployment: Chat Completions has no way to count
    tokens, so cupola estimates (and never calls the upstream to do it)."""
    text = "The quick brown fox jumps over the lazy dog. " * 20
    hi: Any = [{"role": "user", "content": "hi"}]
    said: Any = [{"role": "user", "content": text}]
    short = client.messages.count_tokens(model="unreachable", messages=hi)
    long = client.messages.count_tokens(model="unreachable", messages=said)
    assert long.input_tokens == math.ceil(len(text) / 4) + 4
    assert short.input_tokens == math.ceil(2 / 4) + 4
    with_tools = client.messages.count_tokens(
        model="unreachable", messages=said, tools=[WEATHER_TOOL]
    )
    assert with_tools.input_tokens > long.input_tokens
    with_system = client.messages.count_tokens(
        model="unreachable", system="Be brief.", messages=said
    )
    assert with_system.input_tokens == math.ceil((len(text) + len("Be brief.")) / 4) + 2 * 4


def test_count_tokens_is_exact_when_the_model_can_count(
    server: LiveServer, client: anthropic.Anthropic
) -> None:
    """The scripted models count their input exactly (it is what their usage reports)."""
    messages: Any = [{"role": "user", "content": "three little words and a few more"}]
    counted = client.messages.count_tokens(model="echo", system="Be brief.", messages=messages)
    used = client.messages.create(
        model="echo", system="Be brief.", max_tokens=50, messages=messages
    )
    assert counted.input_tokens == used.usage.input_tokens == 11


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[LiveServer]:
    live = start_server(
        make_settings(database_url, auth={"required": "always", "key_cache_seconds": 0})
    )
    yield live
    live.stop()


def test_anthropic_foundry_client_with_a_cupola_key(
    guarded: LiveServer, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _key, secret = guarded.services.store.create_key_sync(f"foundry-{unique}")
    base_url = f"{guarded.url}/anthropic"
    foundry = anthropic.AnthropicFoundry(base_url=base_url, api_key=secret, max_retries=0)
    message = foundry.messages.create(
        model="echo", max_tokens=50, messages=[{"role": "user", "content": "via foundry"}]
    )
    assert message.content[0].text == "user: via foundry"  # type: ignore[union-attr]
    with foundry.messages.stream(
        model="weather-bot",
        max_tokens=50,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        assert stream.get_final_message().stop_reason == "tool_use"
    counted = foundry.messages.count_tokens(
        model="echo", messages=[{"role": "user", "content": "count me"}]
    )
    assert counted.input_tokens > 0

    # Claude Code's settings: the base URL and key from the environment, no resource.
    monkeypatch.delenv("ANTHROPIC_FOUNDRY_RESOURCE", raising=False)
    monkeypatch.setenv("ANTHROPIC_FOUNDRY_BASE_URL", base_url)
    monkeypatch.setenv("ANTHROPIC_FOUNDRY_API_KEY", secret)
    from_env = anthropic.AnthropicFoundry(max_retries=0)
    reply = from_env.messages.create(
        model="echo", max_tokens=50, messages=[{"role": "user", "content": "from env"}]
    )
    assert reply.content[0].text == "user: from env"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="mutually exclusive"):
        anthropic.AnthropicFoundry(base_url=base_url, resource="my-resource", api_key=secret)

    plain = anthropic.Anthropic(base_url=base_url, api_key=secret, max_retries=0)
    assert (
        plain.messages.create(
            model="echo", max_tokens=20, messages=[{"role": "user", "content": "plain"}]
        )
        .content[0]
        .text
        == "user: plain"
    )  # type: ignore[union-attr]
    wrong = anthropic.AnthropicFoundry(base_url=base_url, api_key="cpl-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        wrong.messages.create(
            model="echo", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.status_code == 401
    assert refused.value.body == {  # Anthropic's error shape, as on every route here
        "type": "error",
        "error": {"type": "authentication_error", "message": ANY_KEY_MESSAGE},
    }


ANY_KEY_MESSAGE = "a valid API key is required (Authorization: Bearer <key>, api-key or x-api-key)"


def bad_requests() -> list[tuple[dict[str, Any], int, str]]:
    """(body, status, error type) for requests that must be refused."""
    hi = [{"role": "user", "content": "hi"}]
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    return [
        ({"model": "echo", "messages": hi}, 400, "invalid_request_error"),
        ({"model": "echo", "max_tokens": 0, "messages": hi}, 400, "invalid_request_error"),
        ({"model": "echo", "max_tokens": 5, "messages": []}, 400, "invalid_request_error"),
        ({"model": "nope", "max_tokens": 5, "messages": hi}, 404, "not_found_error"),
        (
            {"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": [image]}]},
            400,
            "invalid_request_error",
        ),
        (
            {
                "model": "echo",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}],
                    }
                ],
            },
            400,
            "invalid_request_error",
        ),
        (
            {"model": "echo", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
            400,
            "invalid_request_error",
        ),
        (
            {
                "model": "echo",
                "max_tokens": 5,
                "messages": hi,
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            400,
            "invalid_request_error",
        ),
        (
            {"model": "echo", "max_tokens": 5, "messages": hi, "tool_choice": {"type": "maybe"}},
            400,
            "invalid_request_error",
        ),
        (
            {"model": "echo", "max_tokens": 5, "messages": hi, "temperature": 1.5},
            400,
            "invalid_request_error",
        ),
        ({"model": "unreachable", "max_tokens": 5, "messages": hi}, 502, "api_error"),
    ]


def test_errors_take_the_anthropic_shape_and_store_nothing(server: LiveServer) -> None:
    before = table_counts(server)
    with httpx.Client(base_url=f"{server.url}/anthropic/v1", timeout=30) as http:
        for body, status, kind in bad_requests():
            for stream in (False, True):
                r = http.post("/messages", json={**body, "stream": stream})
                label = f"{body} stream={stream}"
                assert r.status_code == status, (label, r.text)
                error = r.json()
                assert error["type"] == "error", label
                assert error["error"]["type"] == kind and error["error"]["message"], label
        r = http.post(
            "/messages/count_tokens",
            json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert table_counts(server) == before


def test_sdk_errors(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError, match="no deployment or agent"):
        client.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError, match="take text only"):
        client.messages.create(
            model="echo",
            max_tokens=5,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                        }
                    ],
                }
            ],
        )
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(
            model="unreachable", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_an_agent_as_the_model(
    server: LiveServer, client: anthropic.Anthropic, unique: str
) -> None:
    name = f"claude-agent-{unique}"
    definition = {"kind": "prompt", "model": "echo", "instructions": "You are an agent."}
    r = httpx.post(f"{server.project_url}/agents/{name}/versions", json={"definition": definition})
    assert r.status_code == 200, r.text
    message = client.messages.create(
        model=name, max_tokens=50, system="Extra.", messages=[{"role": "user", "content": "hi"}]
    )
    assert message.model == name
    assert message.content[0].text == "system: You are an agent.\nsystem: Extra.\nuser: hi"  # type: ignore[union-attr]
