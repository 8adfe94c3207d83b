"""The ``openai`` adapter against a real HTTP server on loopback (see fake_chat_upstream.py)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import fake_chat_upstream
import httpx
import pytest
from fake_chat_upstream import (
    Chunk,
    FakeChatUpstream,
    Reply,
    chunk,
    text_chunks,
    unused_port,
    usage_body,
)

from cupola.exceptions import ProviderError
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
from cupola.models.openai import OpenAIChatModel
from cupola.models.registry import ModelRegistry
from cupola.secrets import SecretBox
from cupola.settings import DeploymentConfig, Settings
from cupola.store import SqlStore
from cupola.store.connections import ConnectionSecrets

fake_upstream = fake_chat_upstream.fake_upstream  # the shared fixture, session-scoped

MakeModel = Callable[..., OpenAIChatModel]
HELLO = ModelRequest(messages=(ChatMessage("user", "hello"),))
KEY = "sk-test-secret-0123456789"


def config(base_url: str, model: str, **kwargs: object) -> DeploymentConfig:
    return DeploymentConfig.model_validate(
        {"name": "dep", "provider": "openai", "model": model, "base_url": base_url, **kwargs}
    )


@pytest.fixture
async def make_model(
    fake_upstream: FakeChatUpstream,
) -> AsyncIterator[MakeModel]:
    models: list[OpenAIChatModel] = []

    def make(model: str, base_url: str | None = None, **kwargs: object) -> OpenAIChatModel:
        made = OpenAIChatModel(config(base_url or fake_upstream.base_url, model, **kwargs))
        models.append(made)
        return made

    yield make
    for made in models:
        await made.aclose()


async def events_of(model: OpenAIChatModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


async def test_streamed_text_assembles(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    fake_upstream.reply("m-text", Reply(text_chunks(["Hel", "lo, ", "world"], model="m-text")))
    model = make_model("m-text")
    events = await events_of(model, HELLO)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo, ", "world"]
    assert events[-1] == Finish("stop", Usage(), "m-text")
    assert sum(isinstance(e, Finish) for e in events) == 1
    result = await complete(model, HELLO)
    assert result.text == "Hello, world"
    assert result.tool_calls == []


async def test_stream_is_read_incrementally(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    gate = threading.Event()
    chunks = [chunk("m-gate", {"content": "first"}), chunk("m-gate", {"content": " second"})]
    chunks.append(chunk("m-gate", {}, finish="stop"))
    fake_upstream.reply("m-gate", Reply(chunks, gate=gate))
    seen: list[str] = []
    async for event in make_model("m-gate").stream(HELLO):
        if isinstance(event, TextDelta):
            if not seen:
                assert not gate.is_set(), "the first fragment arrived only after the stream ended"
                gate.set()
            seen.append(event.text)
    assert seen == ["first", " second"]


async def test_tool_call_fragments_assemble(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    m = "m-tools"
    chunks = [
        chunk(m, {"role": "assistant", "content": None}),
        chunk(
            m,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(m, {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        chunk(m, {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "To'}}]}),
        chunk(m, {"tool_calls": [{"index": 0, "function": {"arguments": 'kyo"}'}}]}),
        chunk(
            m,
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_def",
                        "function": {"name": "get_time", "arguments": "{}"},
                    }
                ]
            },
        ),
        chunk(m, {}, finish="tool_calls"),
        chunk(m, usage=usage_body(12, 7)),
    ]
    fake_upstream.reply(m, Reply(chunks))
    model = make_model(m)
    events = await events_of(model, HELLO)
    assert ToolCallDelta(0, call_id="call_abc", name="get_weather", arguments="") in events
    result = await complete(model, HELLO)
    assert result.tool_calls == [
        ToolCall("call_abc", "get_weather", '{"city": "Tokyo"}'),
        ToolCall("call_def", "get_time", "{}"),
    ]
    assert result.text == ""
    assert result.finish.reason == "tool_calls"
    assert result.finish.usage == Usage(12, 7)


async def test_legacy_function_call_finish(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    m = "m-legacy"
    chunks = [
        chunk(m, {"function_call": {"name": "lookup", "arguments": '{"q":'}}),
        chunk(m, {"function_call": {"arguments": '"x"}'}}),
        chunk(m, {}, finish="function_call"),
    ]
    fake_upstream.reply(m, Reply(chunks))
    result = await complete(make_model(m), HELLO)
    assert result.tool_calls == [ToolCall("call_0", "lookup", '{"q":"x"}')]
    assert result.finish.reason == "tool_calls"


async def test_usage_is_reported(fake_upstream: FakeChatUpstream, make_model: MakeModel) -> None:
    usage = usage_body(20, 9, cached=16, reasoning=4)
    served = "gpt-fake-2025-01-01"
    fake_upstream.reply("m-usage", Reply(text_chunks(["hi"], model=served, usage=usage)))
    result = await complete(make_model("m-usage"), HELLO)
    assert result.finish == Finish("stop", Usage(20, 9, 16, 4), served)
    body = fake_upstream.last("m-usage").body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_usage_in_finish_chunk_without_done(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    chunks = [chunk("m-nodone", {"content": "ok"}), chunk("m-nodone", {}, finish="length")]
    chunks[-1]["usage"] = usage_body(3, 1)
    fake_upstream.reply("m-nodone", Reply(chunks, done=False))
    result = await complete(make_model("m-nodone"), HELLO)
    assert result.text == "ok"
    assert result.finish.reason == "length"
    assert result.finish.usage == Usage(3, 1)


async def test_non_stream_answer_is_accepted(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    chunks = text_chunks(["plain ", "json"], model="m-json", usage=usage_body(5, 2))
    fake_upstream.reply("m-json", Reply(chunks, ignore_stream=True))
    result = await complete(make_model("m-json"), HELLO)
    assert result.text == "plain json"
    assert result.finish == Finish("stop", Usage(5, 2), "m-json")


async def test_request_mapping(fake_upstream: FakeChatUpstream, make_model: MakeModel) -> None:
    request = ModelRequest(
        messages=(
            ChatMessage("system", "be brief"),
            ChatMessage("developer", "use tools"),
            ChatMessage("user", "weather in Tokyo?"),
            ChatMessage(
                "assistant", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Tokyo"}'),)
            ),
            ChatMessage("tool", "sunny", tool_call_id="call_1", name="get_weather"),
            ChatMessage("assistant", "It is sunny."),
        ),
        tools=(
            FunctionSpec(
                "get_weather",
                "Weather of a city",
                {"type": "object", "properties": {"city": {"type": "string"}}},
                strict=True,
            ),
            FunctionSpec("get_time"),
        ),
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=64,
        response_format={"type": "json_schema", "name": "r", "schema": {"type": "object"}},
        reasoning_effort="low",
        parallel_tool_calls=False,
    )
    model = make_model("m-map", api_key=KEY, headers={"X-Trace": "t1"})
    await complete(model, request)
    seen = fake_upstream.last("m-map")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["x-trace"] == "t1"
    body = seen.body
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "use tools"},
        {"role": "user", "content": "weather in Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": True,
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 64
    assert body["reasoning_effort"] == "low"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}},
    }


async def test_minimal_request_omits_optional_fields(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    await complete(make_model("m-min"), HELLO)
    seen = fake_upstream.last("m-min")
    assert "authorization" not in seen.headers
    assert seen.body == {
        "model": "m-min",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_model_defaults_to_deployment_name_and_json_object(
    fake_upstream: FakeChatUpstream,
) -> None:
    dep = DeploymentConfig(name="m-named", provider="openai", base_url=fake_upstream.base_url)
    model = OpenAIChatModel(dep)
    try:
        request = ModelRequest(messages=HELLO.messages, response_format={"type": "json_object"})
        result = await complete(model, request)
    finally:
        await model.aclose()
    assert result.text == "echo: hello"
    body = fake_upstream.last("m-named").body
    assert body["model"] == "m-named"
    assert body["response_format"] == {"type": "json_object"}


async def test_shared_session_is_reused_and_not_closed(fake_upstream: FakeChatUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        model = OpenAIChatModel(config(fake_upstream.base_url, "m-client"), session=session)
        assert (await complete(model, HELLO)).text == "echo: hello"
        await model.aclose()
        assert not session.closed


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "Incorrect API key provided"), (500, "The server had an error")],
)
async def test_upstream_error_status(
    fake_upstream: FakeChatUpstream, make_model: MakeModel, status: int, message: str
) -> None:
    name = f"m-status-{status}"
    error = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    fake_upstream.reply(name, Reply(status=status, error=error))
    with pytest.raises(ProviderError) as caught:
        await complete(make_model(name, api_key=KEY), HELLO)
    text = str(caught.value)
    assert str(status) in text
    assert message in text
    assert "'dep'" in text
    assert KEY not in text


async def test_error_message_never_echoes_the_key(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    error = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    fake_upstream.reply("m-leak", Reply(status=401, error=error))
    with pytest.raises(ProviderError) as caught:
        await complete(make_model("m-leak", api_key=KEY), HELLO)
    assert KEY not in str(caught.value)
    assert "401" in str(caught.value)


async def test_connection_refused(make_model: MakeModel) -> None:
    model = make_model("m-refused", base_url=f"http://127.0.0.1:{unused_port()}/v1", api_key=KEY)
    with pytest.raises(ProviderError) as caught:
        await complete(model, HELLO)
    assert "cannot connect" in str(caught.value)
    assert "'dep'" in str(caught.value)
    assert KEY not in str(caught.value)


async def test_timeout(fake_upstream: FakeChatUpstream, make_model: MakeModel) -> None:
    fake_upstream.reply("m-slow", Reply(text_chunks(["late"]), delay=1.0))
    with pytest.raises(ProviderError, match="did not answer within 0.2s"):
        await complete(make_model("m-slow", timeout=0.2), HELLO)


async def test_malformed_chunk(fake_upstream: FakeChatUpstream, make_model: MakeModel) -> None:
    chunks: list[Chunk] = [chunk("m-bad", {"content": "ok"}), '{"choices": [ not json']
    fake_upstream.reply("m-bad", Reply(chunks))
    events: list[ModelEvent] = []
    with pytest.raises(ProviderError, match="malformed stream event"):
        async for event in make_model("m-bad").stream(HELLO):
            events.append(event)
    assert events == [TextDelta("ok")]


async def test_error_event_mid_stream(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    error = {"error": {"message": "model overloaded", "type": "server_error"}}
    fake_upstream.reply("m-err", Reply([chunk("m-err", {"content": "par"}), error]))
    with pytest.raises(ProviderError, match="model overloaded"):
        await complete(make_model("m-err"), HELLO)


@pytest.mark.parametrize(
    ("drop", "expected"),
    [(True, "broke off mid-reply"), (False, "ended before the reply finished")],
    ids=["connection-broken", "clean-eof"],
)
async def test_dropped_stream(
    fake_upstream: FakeChatUpstream, make_model: MakeModel, drop: bool, expected: str
) -> None:
    name = f"m-drop-{drop}"
    chunks = [chunk(name, {"content": "half a "}), chunk(name, {"content": "reply"})]
    fake_upstream.reply(name, Reply(chunks, done=False, drop=drop))
    events: list[ModelEvent] = []
    with pytest.raises(ProviderError, match=expected) as caught:
        async for event in make_model(name).stream(HELLO):
            events.append(event)
    assert "'dep'" in str(caught.value)
    assert not any(isinstance(e, Finish) for e in events)
    assert events == [TextDelta("half a "), TextDelta("reply")]


async def test_keep_alive_reuses_one_client(
    fake_upstream: FakeChatUpstream, make_model: MakeModel
) -> None:
    model = make_model("m-keepalive")
    await complete(model, HELLO)
    session = model._session
    await complete(model, HELLO)
    assert model._session is session and session is not None
    await model.aclose()
    assert session.closed
    assert (await complete(model, HELLO)).text == "echo: hello"  # reopened lazily


async def test_fake_upstream_non_stream_form(fake_upstream: FakeChatUpstream) -> None:
    body = {"model": "m-plain", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake_upstream.base_url}/chat/completions", json=body)
    assert response.status_code == 200
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "echo: hi"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] == 2


async def test_key_from_a_project_connection_is_sent_as_a_bearer_token(
    fake_upstream: FakeChatUpstream, database_url: str, tmp_path: Path, unique: str
) -> None:
    """`connection:` instead of `api_key:`: the key lives encrypted in a project connection,
    is read by the server, and goes upstream as `Authorization: Bearer`."""
    store = SqlStore(database_url)
    store.use_secret_box(SecretBox(key_file=tmp_path / "secret.key"))
    await store.open()
    project = f"p-{unique}"
    model = f"conn-model-{unique}"
    try:
        await store.create_or_replace_connection(
            project,
            "vllm",
            type="CustomKeys",
            target=fake_upstream.base_url,
            credential_type="ApiKey",
            secret={"key": f"conn-key-{unique}"},
            metadata={},
        )
        dep = config(fake_upstream.base_url, model, connection="vllm")
        settings = Settings.model_validate({"project": project, "deployments": [dep]})
        registry = ModelRegistry(settings, secrets=ConnectionSecrets(store))
        try:
            result = await complete(registry.get("dep"), HELLO)
            assert result.text == "echo: hello"
            sent = fake_upstream.last(model).headers["authorization"]
            assert sent == f"Bearer conn-key-{unique}"
        finally:
            await registry.aclose()
    finally:
        await store.close()
