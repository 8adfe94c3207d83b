"""``/v1/chat/completions`` driven by the openai SDK against a live cupola: plain and streamed
completions, the tools round trip, json_schema, an agent as the model, parameters reaching an
OpenAI-compatible upstream, and bad input (OpenAI error shape, nothing stored)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
import sqlalchemy as sa

from cupola.settings import DeploymentConfig
from cupola.store.tables import metadata
from live_server import LiveServer, make_settings, start_server
from live_server import test_deployments as scripted_deployments

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from fake_chat_upstream import (  # noqa: E402
    FakeChatUpstream,
    Reply,
    serve_fake_upstream,
    text_chunks,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def table_counts(server: LiveServer) -> dict[str, int]:
    """Rows per table, spans aside: a run that fails upstream is traced, as it should be."""
    with server.services.store.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
            if t.name != "spans"
        }


def raw_chunks(url: str, body: dict[str, Any]) -> tuple[httpx.Headers, list[str]]:
    """The ``data:`` payloads of a streamed completion, as sent."""
    with httpx.stream("POST", f"{url}/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        return r.headers, data


def test_completion_has_the_openai_shape(server: LiveServer, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello there"}]},
        ],
    )
    assert raw.headers["x-cupola-deployment"] == "echo"
    assert raw.headers["x-cupola-attempts"] == "1"
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "echo"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "system: Be brief.\nuser: Hello there"
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.completion_tokens == 6
    body = json.loads(raw.content)
    assert set(body) == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    }
    assert set(body["choices"][0]["message"]) == {"role", "content", "refusal"}


def test_project_route_and_developer_role(server: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    completion = sdk.chat.completions.create(
        model="echo",
        messages=[
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Again"},
        ],
    )
    text = "developer: Rules.\nuser: Hi\nassistant: Hello!\nuser: Again"
    assert completion.choices[0].message.content == text


def test_streaming_with_usage(server: LiveServer, client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "stream these words please"}]
    whole = client.chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1, "the reply arrives in pieces"
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert whole.usage is not None and last.usage.total_tokens == whole.usage.total_tokens
    assert all(c.usage is None for c in chunks[:-1])

    headers, data = raw_chunks(f"{server.url}/v1", {"model": "echo", "messages": messages})
    assert data[-1] == "[DONE]"
    assert headers["x-cupola-deployment"] == "echo"
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])
    assert "usage" not in json.loads(data[1]), "no usage keys without include_usage"


def test_tools_round_trip(client: openai.OpenAI) -> None:
    question = {"role": "user", "content": "What's the weather in Tokyo?"}
    first = client.chat.completions.create(
        model="weather-bot",
        messages=[question],  # type: ignore[list-item]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Tokyo"}

    answer = client.chat.completions.create(
        model="weather-bot",
        messages=[
            question,  # type: ignore[list-item]
            choice.message.model_dump(exclude_none=True),  # type: ignore[misc]
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 20}'},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert answer.choices[0].message.content == "It is sunny in Tokyo, twenty degrees."
    assert answer.choices[0].finish_reason == "stop"


def test_streamed_tool_call_fragments_join(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="weather-bot",
        messages=[{"role": "user", "content": "weather in Tokyo"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    ids, names, arguments, finish = [], [], [], []
    for chunk in stream:
        for choice in chunk.choices:
            for frag in choice.delta.tool_calls or []:
                assert frag.index == 0
                if frag.id:
                    ids.append(frag.id)
                if frag.function and frag.function.name:
                    names.append(frag.function.name)
                if frag.function and frag.function.arguments:
                    arguments.append(frag.function.arguments)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert len(ids) == 1 and names == ["get_weather"]
    assert len(arguments) > 1 and json.loads("".join(arguments)) == {"city": "Tokyo"}
    assert finish == ["tool_calls"]


def test_max_tokens_ends_with_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three four five six"}],
        max_tokens=3,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "user: one two "


def test_an_agent_as_the_model(server: LiveServer, client: openai.OpenAI, unique: str) -> None:
    name = f"terse-{unique}"
    definition = {
        "kind": "prompt",
        "model": "weather-bot",
        "instructions": "You are terse.",
        "tools": [{"type": "function", **WEATHER_TOOL["function"]}],  # type: ignore[dict-item]
    }
    r = httpx.post(f"{server.project_url}/agents/{name}/versions", json={"definition": definition})
    assert r.status_code == 200, r.text
    raw = client.chat.completions.with_raw_response.create(
        model=name, messages=[{"role": "user", "content": "Weather in Tokyo?"}]
    )
    assert raw.headers["x-cupola-deployment"] == "weather-bot"
    completion = raw.parse()
    assert completion.model == name
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"

    echo_agent = f"echoer-{unique}"
    for version, text in ((1, "Version one."), (2, "Version two.")):
        definition = {"kind": "prompt", "model": "echo", "instructions": text}
        r = httpx.post(
            f"{server.project_url}/agents/{echo_agent}/versions", json={"definition": definition}
        )
        assert r.json()["version"] == str(version)
    latest = client.chat.completions.create(
        model=echo_agent, messages=[{"role": "user", "content": "hi"}]
    )
    assert latest.choices[0].message.content == "system: Version two.\nuser: hi"
    pinned = client.chat.completions.create(
        model=f"{echo_agent}:1", messages=[{"role": "user", "content": "hi"}]
    )
    assert pinned.choices[0].message.content == "system: Version one.\nuser: hi"


@pytest.mark.embedded
def test_json_schema_constrains_the_embedded_model(server: LiveServer) -> None:
    # The schema bounds every value (llama.cpp's grammar also bounds integers and the
    # whitespace between tokens), so any reply that fits it is far shorter than max_tokens:
    # the reply ends on its own, however slow or busy the machine. Unconstrained, the model
    # answers this question in prose, which is not JSON.
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=600)
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 24},
            "population": {"type": "integer", "minimum": 0},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    completion = sdk.chat.completions.create(
        model="local-small",
        messages=[{"role": "user", "content": "Name a large city and its population."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
        temperature=0,
        max_tokens=400,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice
    assert choice.message.content is not None
    jsonschema.validate(json.loads(choice.message.content), schema)


def test_model_failure_is_a_502_in_the_openai_shape(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="unreachable",
                messages=[{"role": "user", "content": "hi"}],
                stream=stream,
            )
        assert caught.value.status_code == 502
        assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "model_error"


def bad_requests() -> list[tuple[dict[str, Any], int, str | None, str | None]]:
    """(body, status, param, code) for requests that must be refused."""
    hi = [{"role": "user", "content": "hi"}]
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    return [
        ({"messages": hi}, 400, "model", None),
        ({"model": "echo", "messages": []}, 400, "messages", None),
        ({"model": "no-such-model", "messages": hi}, 404, "model", "model_not_found"),
        ({"model": "echo", "messages": hi, "n": 2}, 400, "n", "unsupported_value"),
        (
            {"model": "echo", "messages": [{"role": "user", "content": [image]}]},
            400,
            "messages[0].content[0]",
            "unsupported_content",
        ),
        (
            {"model": "echo", "messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]},
            400,
            "messages[0].tool_call_id",
            "invalid_call_id",
        ),
        (
            {"model": "echo", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role",
            None,
        ),
        (
            {"model": "echo", "messages": hi, "max_tokens": 5, "max_completion_tokens": 5},
            400,
            "max_tokens",
            "invalid_parameter_combination",
        ),
        ({"model": "echo", "messages": hi, "top_logprobs": 2}, 400, "top_logprobs", None),
        ({"model": "echo", "messages": hi, "temperature": 3}, 400, "temperature", None),
        ({"model": "echo", "messages": hi, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", None),
        (
            {"model": "echo", "messages": hi, "stream_options": {"include_usage": True}},
            400,
            "stream_options",
            None,
        ),
        (
            {"model": "echo", "messages": hi, "tools": [{"type": "web_search"}]},
            400,
            "tools[0].type",
            "unsupported_tool",
        ),
        (
            {"model": "echo", "messages": hi, "functions": [{"name": "f"}]},
            400,
            "functions",
            "unsupported_parameter",
        ),
        (
            {"model": "echo", "messages": hi, "response_format": {"type": "json_schema"}},
            400,
            "response_format.json_schema",
            None,
        ),
        (
            {
                "model": "echo",
                "messages": hi,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
                },
            },
            400,
            "response_format.json_schema.schema",
            None,
        ),
        (
            {"model": "echo", "messages": hi, "tools": [WEATHER_TOOL], "tool_choice": "sometimes"},
            400,
            "tool_choice",
            None,
        ),
        ({"model": "echo", "messages": hi, "logit_bias": {"1": 500}}, 400, "logit_bias", None),
        ({"model": "echo", "messages": hi, "verbosity": "loud"}, 400, "verbosity", None),
    ]


def test_bad_requests_get_the_openai_error_shape_and_store_nothing(server: LiveServer) -> None:
    before = table_counts(server)
    with httpx.Client(base_url=f"{server.url}/v1", timeout=30) as http:
        for body, status, param, code in bad_requests():
            for stream in (False, True):
                r = http.post("/chat/completions", json={**body, "stream": stream})
                label = f"{body} stream={stream}"
                if stream and param == "stream_options":
                    assert r.status_code == 200, label  # with stream=true it is allowed
                    continue
                assert r.status_code == status, (label, r.text)
                error = r.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}, label
                assert error["message"] and error["param"] == param, (label, error)
                if code is not None:
                    assert error["code"] == code, (label, error)
                assert r.headers["x-should-retry"] == "false"
        good = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/chat/completions", json=good).status_code == 200
    assert table_counts(server) == before


def test_sdk_raises_bad_request_for_images(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="take text only"):
        client.chat.completions.create(
            model="echo",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                }
            ],
        )


# -- parameters reach an OpenAI-compatible upstream ---------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeChatUpstream]:
    with serve_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(database_url: str, upstream: FakeChatUpstream) -> Iterator[LiveServer]:
    """A server whose ``gpt-4o``, ``gpt-5-mini`` and ``gpt-4o-drops`` deployments are the
    fake upstream."""
    extra = [
        DeploymentConfig(
            name=name, provider="openai", model=name, base_url=upstream.base_url, retries=0
        )
        for name in ("gpt-4o", "gpt-5-mini", "gpt-4o-drops")
    ]
    live = start_server(make_settings(database_url, deployments=[*scripted_deployments(), *extra]))
    yield live
    live.stop()


def test_sampling_parameters_reach_the_upstream(
    relay: LiveServer, upstream: FakeChatUpstream
) -> None:
    sdk = openai.OpenAI(base_url=f"{relay.url}/v1", api_key="x", max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        temperature=0.3,
        top_p=0.8,
        stop=["\nEND"],
        presence_penalty=0.5,
        frequency_penalty=0.25,
        seed=7,
        logprobs=True,
        top_logprobs=2,
        logit_bias={"50256": -100},
        user="user-42",
        max_completion_tokens=50,
        response_format={"type": "json_object"},
    )
    assert raw.parse().choices[0].message.content == "echo: hello"
    sent = upstream.last("gpt-4o").body
    expected = {
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["\nEND"],
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "seed": 7,
        "logprobs": True,
        "top_logprobs": 2,
        "logit_bias": {"50256": -100},
        "user": "user-42",
        "max_tokens": 50,
        "response_format": {"type": "json_object"},
    }
    assert {k: sent.get(k) for k in expected} == expected
    assert "max_completion_tokens" not in sent  # a legacy model's cap is max_tokens
    adjustments = json.loads(raw.headers["x-cupola-adjustments"])
    assert [(a["param"], a["action"]) for a in adjustments] == [
        ("max_completion_tokens", "translated")
    ]


def test_reasoning_deployment_reports_its_adjustments(
    relay: LiveServer, upstream: FakeChatUpstream
) -> None:
    sdk = openai.OpenAI(base_url=f"{relay.url}/v1", api_key="x", max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-5-mini",
        messages=[{"role": "user", "content": "hello"}],
        temperature=0.3,
        stop=["\nEND"],
        reasoning_effort="low",
        verbosity="low",
    )
    sent = upstream.last("gpt-5-mini").body
    assert sent["reasoning_effort"] == "low" and sent["verbosity"] == "low"
    assert "temperature" not in sent and "stop" not in sent
    assert raw.headers["x-cupola-deployment"] == "gpt-5-mini"
    adjustments = json.loads(raw.headers["x-cupola-adjustments"])
    dropped = {a["param"] for a in adjustments if a["action"] == "dropped"}
    assert {"temperature", "stop"} <= dropped


def test_langchain_chain_stop_does_not_reach_a_reasoning_deployment(
    relay: LiveServer, upstream: FakeChatUpstream
) -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{relay.url}/v1",
        api_key="x",  # type: ignore[arg-type]
        model="gpt-5-mini",
        include_response_headers=True,
        max_retries=0,
    )
    prompt = ChatPromptTemplate.from_messages([("system", "You write SQL."), ("user", "{q}")])
    chain = prompt | llm.bind(stop=["\nSQLResult:"])
    reply = chain.invoke({"q": "count the users"})
    assert reply.content == "echo: count the users"
    sent = upstream.last("gpt-5-mini").body
    assert "stop" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "You write SQL."}
    adjustments = json.loads(reply.response_metadata["headers"]["x-cupola-adjustments"])
    assert {"param": "stop", "action": "dropped"} == {
        k: v for k, v in adjustments[0].items() if k != "detail"
    }


def test_langchain_tool_calls_and_streaming(server: LiveServer) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return '{"temperature_c": 20}'

    llm = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key="x",  # type: ignore[arg-type]
        model="weather-bot",
        max_retries=0,
    )
    message = llm.bind_tools([get_weather]).invoke("What's the weather in Tokyo?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Tokyo"})
    ]
    pieces = [chunk.content for chunk in llm.stream("hello")]
    assert "".join(str(p) for p in pieces) == "How can I help with your trip?"
    assert len([p for p in pieces if p]) > 1


def test_responses_api_parameters_reach_the_upstream_too(
    relay: LiveServer, upstream: FakeChatUpstream
) -> None:
    """The same ModelRequest fields, from the Responses API where it has them."""
    sdk = openai.OpenAI(base_url=f"{relay.url}/v1", api_key="x", max_retries=0)
    response = sdk.responses.create(
        model="gpt-4o",
        input="hello",
        top_logprobs=2,
        user="user-7",
        extra_body={"presence_penalty": 0.5, "frequency_penalty": -0.5},
    )
    assert response.output_text == "echo: hello"
    sent = upstream.last("gpt-4o").body
    expected = {
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logprobs": True,
        "top_logprobs": 2,
        "user": "user-7",
    }
    assert {k: sent.get(k) for k in expected} == expected
    sdk.responses.create(model="gpt-5-mini", input="hello", text={"verbosity": "high"})
    assert upstream.last("gpt-5-mini").body["verbosity"] == "high"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(
            model="gpt-5-mini",
            input="hello",
            text={"verbosity": "loud"},  # type: ignore[typeddict-item]
        )
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "text.verbosity"


def test_a_failure_after_the_stream_began_arrives_in_the_stream(
    relay: LiveServer, upstream: FakeChatUpstream
) -> None:
    """The upstream drops its stream after two words: the client sees them, then the SDK
    raises the error cupola puts in the stream (OpenAI's ``data: {"error"}``, Anthropic's
    ``event: error``)."""
    chunks = text_chunks(["partial ", "answer "], model="gpt-4o-drops")[:3]
    upstream.reply("gpt-4o-drops", Reply(chunks, done=False, drop=True))
    sdk = openai.OpenAI(base_url=f"{relay.url}/v1", api_key="x", max_retries=0)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="after its reply had started"):
        for chunk in sdk.chat.completions.create(
            model="gpt-4o-drops", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            seen += [c.delta.content or "" for c in chunk.choices]
    assert "".join(seen) == "partial answer "

    import anthropic

    claude = anthropic.Anthropic(base_url=f"{relay.url}/anthropic", api_key="x", max_retries=0)
    texts: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="after its reply had started"),
        claude.messages.stream(
            model="gpt-4o-drops", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        texts.extend(stream.text_stream)
    assert "".join(texts) == "partial answer "


TRAVEL_MCP = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge" / "mcp_server.py"


def test_an_agent_runs_its_server_side_tools(
    server: LiveServer, client: openai.OpenAI, unique: str
) -> None:
    """The agent's MCP tool runs on the server within the request; the client sees only the
    answer. A call needing approval cannot be granted here and is refused clearly."""
    for approval in ("never", "always"):
        name = f"travel-{approval}-{unique}"
        tool = {
            "type": "mcp",
            "server_label": "travel",
            "command": [sys.executable, str(TRAVEL_MCP)],
            "require_approval": approval,
        }
        definition = {"kind": "prompt", "model": "weather-bot", "tools": [tool]}
        r = httpx.post(
            f"{server.project_url}/agents/{name}/versions", json={"definition": definition}
        )
        assert r.status_code == 200, r.text
        ask = [{"role": "user", "content": "What is the weather in Tokyo?"}]
        if approval == "never":
            reply = client.chat.completions.create(model=name, messages=ask)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == "It is sunny in Tokyo, twenty degrees."
            assert reply.choices[0].message.tool_calls is None
            continue
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=name, messages=ask)  # type: ignore[arg-type]
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "approval_required"
