"""The ``anthropic`` adapter against a loopback fake of the Messages API (fake_upstreams.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from fake_upstreams import (
    Answer,
    FakeAnthropic,
    anthropic_end,
    anthropic_error,
    anthropic_start,
    anthropic_text,
    anthropic_text_block,
    anthropic_tool_block,
    fake_token_count,
    serve,
)

from cupola.exceptions import ConfigError, ProviderError
from cupola.models.anthropic import AnthropicModel, build_messages_body
from cupola.models.base import (
    ChatMessage,
    Finish,
    FunctionSpec,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    complete,
)
from cupola.models.credentials import AI_SCOPE
from cupola.models.registry import build_model
from cupola.settings import DeploymentConfig

KEY = "sk-ant-test-0123456789"
HELLO = ModelRequest(messages=(ChatMessage("user", "hello"),))
MakeModel = Callable[..., AnthropicModel]
WEATHER = FunctionSpec(
    "get_weather",
    "Get the current weather in a given location",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    upstream = FakeAnthropic()
    with serve(upstream):
        yield upstream


@pytest.fixture
async def make(anthropic: FakeAnthropic) -> AsyncIterator[MakeModel]:
    made: list[AnthropicModel] = []

    def build(model: str, **fields: Any) -> AnthropicModel:
        credential = fields.pop("credential", None)
        data = {"name": "claude", "provider": "anthropic", "model": model, **fields}
        data.setdefault("endpoint", anthropic.base_url)
        data.setdefault("api_key", KEY)
        adapter = AnthropicModel(DeploymentConfig.model_validate(data), credential=credential)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


async def events_of(model: AnthropicModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


async def test_streamed_text(anthropic: FakeAnthropic, make: MakeModel) -> None:
    events = [
        anthropic_start("claude-sonnet-4-5-20250929", 25, cache_read=100),
        *anthropic_text_block(0, ["Hello", "!", " How can I help?"]),
        *anthropic_end("end_turn", 15),
    ]
    anthropic.answer("text", Answer(events))
    seen = await events_of(make("text"), HELLO)
    assert seen == [
        TextDelta("Hello"),
        TextDelta("!"),
        TextDelta(" How can I help?"),
        Finish("stop", Usage(125, 15, 100), "claude-sonnet-4-5-20250929"),
    ]
    request = anthropic.received("text")[-1]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.body == {
        "model": "text",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
    }


async def test_tool_use_round_trip(anthropic: FakeAnthropic, make: MakeModel) -> None:
    model_name = "claude-tools"
    first = [
        anthropic_start(model_name, 472),
        *anthropic_text_block(0, ["Let me check ", "the weather."]),
        *anthropic_tool_block(
            1, "toolu_01T1x", "get_weather", ['{"location":', ' "San Fra', 'ncisco, CA"}']
        ),
        *anthropic_end("tool_use", 89),
    ]
    second = anthropic_text(model_name, ["It is 15 degrees ", "and sunny."], input_tokens=600)
    anthropic.answer(model_name, Answer(first), Answer(first), Answer(second))
    model = make(model_name, api_version="2023-06-01")
    ask = ModelRequest(
        messages=(
            ChatMessage("system", "You are a weather bot."),
            ChatMessage("developer", "Always use tools."),
            ChatMessage("user", "Weather in San Francisco?"),
        ),
        tools=(WEATHER,),
        tool_choice="required",
        temperature=0.3,
        max_output_tokens=1024,
        stop=("\n\nHuman:",),
    )
    events = await events_of(model, ask)
    assert ToolCallDelta(0, call_id="toolu_01T1x", name="get_weather") in events
    result = await complete(model, ask)
    assert result.text == "Let me check the weather."
    assert result.tool_calls == [
        ToolCall("toolu_01T1x", "get_weather", '{"location": "San Francisco, CA"}')
    ]
    assert result.finish == Finish("tool_calls", Usage(472, 89), model_name)

    follow = ModelRequest(
        messages=(
            *ask.messages,
            ChatMessage("assistant", result.text, tuple(result.tool_calls)),
            ChatMessage("tool", "15 degrees, sunny", tool_call_id="toolu_01T1x"),
        ),
        tools=(WEATHER,),
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        max_completion_tokens=2048,
    )
    final = await complete(model, follow)
    assert final.text == "It is 15 degrees and sunny."
    assert final.finish.reason == "stop"
    assert anthropic.received(model_name)[-1].body == {
        "model": model_name,
        "max_tokens": 2048,
        "system": "You are a weather bot.\n\nAlways use tools.",
        "messages": [
            {"role": "user", "content": "Weather in San Francisco?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check the weather."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01T1x",
                        "name": "get_weather",
                        "input": {"location": "San Francisco, CA"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01T1x",
                        "content": "15 degrees, sunny",
                    }
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": WEATHER.parameters,
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "stream": True,
    }
    assert len(anthropic.received(model_name)) == 3
    first_body = anthropic.received(model_name)[0].body
    assert first_body["tool_choice"] == {"type": "any"}
    assert first_body["temperature"] == 0.3
    assert first_body["stop_sequences"] == ["\n\nHuman:"]
    assert first_body["max_tokens"] == 1024


def test_parallel_tool_results_merge_into_one_user_turn() -> None:
    calls = (ToolCall("toolu_a", "f", "{}"), ToolCall("toolu_b", "g", "not json"))
    request = ModelRequest(
        messages=(
            ChatMessage("user", "do both"),
            ChatMessage("assistant", tool_calls=calls),
            ChatMessage("tool", "A", tool_call_id="toolu_a"),
            ChatMessage("tool", "B", tool_call_id="toolu_b"),
            ChatMessage("user", "thanks"),
        ),
        tool_choice="none",
    )
    body = build_messages_body("m", request)
    assert body["messages"] == [
        {"role": "user", "content": "do both"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "g",
                    "input": {"arguments": "not json"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "B"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert "tool_choice" not in body  # no tools declared


class CountingCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"entra-{len(self.scopes)}", int(time.time()) + 3600)


async def test_entra_on_foundry(anthropic: FakeAnthropic, make: MakeModel) -> None:
    credential = CountingCredential()
    model = make(
        "claude-foundry",
        endpoint=f"{anthropic.base_url}/anthropic/",
        auth="entra",
        api_key=None,
        credential=credential,
    )
    assert (await complete(model, HELLO)).text == "echo: hello"
    assert (await complete(model, HELLO)).text == "echo: hello"
    assert credential.scopes == [(AI_SCOPE,)]
    for seen in anthropic.received("claude-foundry"):
        assert seen.path == "/anthropic/v1/messages"
        assert seen.headers["authorization"] == "Bearer entra-1"
        assert "x-api-key" not in seen.headers


async def test_entra_without_a_configured_identity_fails_clearly(
    anthropic: FakeAnthropic, make: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ProviderError, match="Entra ID sign-in failed") as caught:
        await complete(make("claude-noid", auth="entra", api_key=None), HELLO)
    assert "az login" in str(caught.value)
    assert anthropic.received("claude-noid") == []


def test_anthropic_itself_needs_a_key() -> None:
    config = DeploymentConfig(name="c", provider="anthropic", model="claude-sonnet-4-5")
    with pytest.raises(ConfigError, match="deployment 'c' \\(anthropic\\) has no credential"):
        build_model(config)


async def test_overloaded_with_retry_after(anthropic: FakeAnthropic, make: MakeModel) -> None:
    body = anthropic_error(
        "rate_limit_error", "Number of request tokens has exceeded your rate limit"
    )
    anthropic.answer("limited", Answer(status=429, body=body, headers={"retry-after": "12"}))
    with pytest.raises(ProviderError) as caught:
        await complete(make("limited"), HELLO)
    assert caught.value.upstream_status == 429
    assert caught.value.retry_after == 12.0
    assert "exceeded your rate limit" in str(caught.value)
    assert KEY not in str(caught.value)


async def test_server_error(anthropic: FakeAnthropic, make: MakeModel) -> None:
    anthropic.answer("api-error", Answer(status=500, body=anthropic_error("api_error", "Internal")))
    with pytest.raises(ProviderError) as caught:
        await complete(make("api-error"), HELLO)
    assert caught.value.upstream_status == 500 and caught.value.retryable
    assert "HTTP 500: Internal" in str(caught.value)


async def test_error_event_mid_stream(anthropic: FakeAnthropic, make: MakeModel) -> None:
    events = [
        anthropic_start("mid", 5),
        *anthropic_text_block(0, ["par"])[:3],
        ("error", anthropic_error("overloaded_error", "Overloaded")),
    ]
    anthropic.answer("mid", Answer(events))
    seen: list[ModelEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in make("mid").stream(HELLO):
            seen.append(event)
    assert seen == [TextDelta("par")]
    assert "overloaded_error" in str(caught.value) and "Overloaded" in str(caught.value)
    assert caught.value.upstream_status == 529 and caught.value.retryable


async def test_malformed_stream(anthropic: FakeAnthropic, make: MakeModel) -> None:
    events = [anthropic_start("bad", 5), ("content_block_start", '{"type": "content_block_st')]
    anthropic.answer("bad", Answer(events))
    with pytest.raises(ProviderError, match="malformed stream event"):
        await complete(make("bad"), HELLO)


@pytest.mark.parametrize("drop", [True, False], ids=["connection-broken", "clean-eof"])
async def test_stream_dropped_before_message_stop(
    anthropic: FakeAnthropic, make: MakeModel, drop: bool
) -> None:
    name = f"drop-{drop}"
    events = [anthropic_start(name, 5), *anthropic_text_block(0, ["half a ", "reply"])]
    anthropic.answer(name, Answer(events, drop=drop))
    seen: list[ModelEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in make(name).stream(HELLO):
            seen.append(event)
    assert seen == [TextDelta("half a "), TextDelta("reply")]
    assert caught.value.retryable


async def test_max_tokens_stop_is_length(anthropic: FakeAnthropic, make: MakeModel) -> None:
    events = [
        anthropic_start("cut", 5),
        *anthropic_text_block(0, ["a"]),
        *anthropic_end("max_tokens", 1),
    ]
    anthropic.answer("cut", Answer(events))
    result = await complete(make("cut"), HELLO)
    assert result.finish.reason == "length"


async def test_count_tokens_asks_the_provider(anthropic: FakeAnthropic, make: MakeModel) -> None:
    """Input tokens are counted by the provider's own endpoint, with what the request would
    send (system, messages, tools) and nothing a count does not take (max_tokens, stream)."""
    model = make("claude-count")
    request = ModelRequest(
        messages=(
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "what is the weather in Paris today"),
        ),
        tools=(WEATHER,),
        max_output_tokens=100,
    )
    counted = await model.count_tokens(request)
    sent = anthropic.received("claude-count")[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.headers["x-api-key"] == KEY
    assert set(sent.body) == {"model", "messages", "system", "tools", "tool_choice"}
    assert counted == fake_token_count(sent.body) == 2 + 7 + 3
    refused = make("claude-count", api_key="", endpoint=anthropic.base_url)
    with pytest.raises(ProviderError, match="HTTP 401"):  # sent without a key
        await refused.count_tokens(request)
