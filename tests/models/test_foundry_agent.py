"""The ``foundry_agent`` adapter against a loopback HTTPS fake of a Foundry project
(fake_foundry.py), through the real azure-ai-projects and openai clients."""

from __future__ import annotations

import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import PromptAgentDefinition
from azure.core.credentials import AccessToken
from fake_foundry import AGENT_MODEL, Events, FakeFoundryProject, error_body
from fake_upstreams import Answer, serve

from cupola.exceptions import ConfigError, MissingDependency, ProviderError
from cupola.models.base import (
    ChatMessage,
    Finish,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    Usage,
    complete,
)
from cupola.models.credentials import AI_SCOPE
from cupola.models.foundry_agent import FoundryAgentModel
from cupola.models.registry import build_model
from cupola.settings import DeploymentConfig
from live_server import LiveServer, self_signed_cert

KEY = "foundry-key-0123456789"
MakeModel = Callable[..., FoundryAgentModel]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("foundry-tls"))


@pytest.fixture(scope="module")
def foundry(cert: tuple[Path, Path]) -> Iterator[FakeFoundryProject]:
    upstream = FakeFoundryProject()
    with serve(upstream, cert):
        yield upstream


def config(endpoint: str, agent: str, **fields: Any) -> DeploymentConfig:
    data = {"name": "remote", "provider": "foundry_agent", "endpoint": endpoint, "agent": agent}
    data.update(fields)
    data.setdefault("api_key", KEY)
    return DeploymentConfig.model_validate(data)


@pytest.fixture
async def make(foundry: FakeFoundryProject, cert: tuple[Path, Path]) -> AsyncIterator[MakeModel]:
    made: list[FoundryAgentModel] = []

    def build(agent: str, **fields: Any) -> FoundryAgentModel:
        credential = fields.pop("credential", None)
        model = FoundryAgentModel(
            config(foundry.project_url(), agent, **fields),
            credential=credential,
            http_client=openai.DefaultAsyncHttpxClient(
                verify=ssl.create_default_context(cafile=cert[0])
            ),
        )
        made.append(model)
        return model

    yield build
    for model in made:
        await model.aclose()


def responses_of(foundry: FakeFoundryProject, agent: str) -> list[dict[str, Any]]:
    return [r.body for r in foundry.received(agent)]


async def test_two_turns_keep_one_remote_conversation(
    foundry: FakeFoundryProject, make: MakeModel
) -> None:
    agent = "support-agent"
    foundry.answer(
        agent,
        Answer(Events().message(["Hello! ", "How can I ", "help?"]).completed(201, 22)),
        Answer(Events("resp_2").message(["Order ORD-1001 ", "has shipped."]).completed(260, 9)),
    )
    model = make(agent, agent_version="3")
    turn1 = (ChatMessage("system", "Answer briefly."), ChatMessage("user", "Hi, my orders?"))
    events = [e async for e in model.stream(ModelRequest(messages=turn1))]
    assert [e for e in events if isinstance(e, TextDelta)] == [
        TextDelta("Hello! "),
        TextDelta("How can I "),
        TextDelta("help?"),
    ]
    assert events[-1] == Finish("stop", Usage(201, 22), AGENT_MODEL)

    turn2 = (
        *turn1,
        ChatMessage("assistant", "Hello! How can I help?"),
        ChatMessage("user", "Order ORD-1001"),
    )
    second = await complete(model, ModelRequest(messages=turn2))
    assert second.text == "Order ORD-1001 has shipped."

    assert foundry.conversations_created() == 1
    first_body, second_body = responses_of(foundry, agent)
    conversation = first_body["conversation"]
    assert second_body["conversation"] == conversation
    reference = {"name": agent, "version": "3", "type": "agent_reference"}
    assert first_body == {
        "input": [
            {"type": "message", "role": "system", "content": "Answer briefly."},
            {"type": "message", "role": "user", "content": "Hi, my orders?"},
        ],
        "conversation": conversation,
        "stream": True,
        "agent_reference": reference,
    }
    assert second_body == {
        "input": [{"type": "message", "role": "user", "content": "Order ORD-1001"}],
        "conversation": conversation,
        "stream": True,
        "agent_reference": reference,
    }
    # the remote side holds the whole exchange, once
    held = foundry.conversations[conversation]
    assert [i.get("role") for i in held] == ["system", "user", "assistant", "user", "assistant"]
    for seen in foundry.received(agent):
        assert seen.headers["authorization"] == f"Bearer {KEY}"


async def test_function_call_round_trip(foundry: FakeFoundryProject, make: MakeModel) -> None:
    agent = "tool-agent"
    call = Events().call("call_9", "lookup_order", ['{"order_id"', ': "ORD-1"}'])
    foundry.answer(
        agent,
        Answer(call.completed(50, 12)),
        Answer(Events("resp_2").message(["It shipped."]).completed(80, 3)),
    )
    model = make(agent)
    ask = (ChatMessage("user", "Where is ORD-1?"),)
    result = await complete(model, ModelRequest(messages=ask))
    assert result.tool_calls == [ToolCall("call_9", "lookup_order", '{"order_id": "ORD-1"}')]
    assert result.finish.reason == "tool_calls"
    answer = (
        *ask,
        ChatMessage("assistant", tool_calls=tuple(result.tool_calls)),
        ChatMessage("tool", '{"status": "shipped"}', tool_call_id="call_9", name="lookup_order"),
    )
    final = await complete(model, ModelRequest(messages=answer))
    assert final.text == "It shipped."
    first_body, second_body = responses_of(foundry, agent)
    assert second_body == {
        "input": [
            {"type": "function_call_output", "call_id": "call_9", "output": '{"status": "shipped"}'}
        ],
        "conversation": first_body["conversation"],
        "stream": True,
        "agent_reference": {"name": agent, "type": "agent_reference"},
    }


async def test_remote_mcp_calls_are_not_part_of_the_reply(
    foundry: FakeFoundryProject, make: MakeModel
) -> None:
    events = Events().mcp_call("search_products", '{"query": "shoes"}', "[]")
    events.message(["I couldn't find any shoes."])
    foundry.answer("mcp-agent", Answer(events.completed()))
    result = await complete(
        make("mcp-agent"), ModelRequest(messages=(ChatMessage("user", "shoes"),))
    )
    assert result.text == "I couldn't find any shoes."
    assert result.tool_calls == []
    assert result.finish.reason == "stop"


async def test_a_forked_history_gets_its_own_conversation(
    foundry: FakeFoundryProject, make: MakeModel
) -> None:
    agent = "fork-agent"  # unscripted: the fake echoes
    model = make(agent)
    turn1 = (ChatMessage("user", "one"),)
    reply = (await complete(model, ModelRequest(messages=turn1))).text
    assert reply == "echo: one"
    branch_a = (*turn1, ChatMessage("assistant", reply), ChatMessage("user", "two-a"))
    branch_b = (*turn1, ChatMessage("assistant", reply), ChatMessage("user", "two-b"))
    await complete(model, ModelRequest(messages=branch_a))
    await complete(model, ModelRequest(messages=branch_b))
    first, second, third = responses_of(foundry, agent)
    assert second["conversation"] == first["conversation"]
    assert second["input"] == [{"type": "message", "role": "user", "content": "two-a"}]
    # branch b must not land in the conversation that already holds branch a: replayed
    assert third["conversation"] != first["conversation"]
    assert third["input"] == [
        {"type": "message", "role": "user", "content": "one"},
        {"type": "message", "role": "assistant", "content": "echo: one"},
        {"type": "message", "role": "user", "content": "two-b"},
    ]


class CountingCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"entra-{len(self.scopes)}", int(time.time()) + 3600)


async def test_entra_token(foundry: FakeFoundryProject, make: MakeModel) -> None:
    credential = CountingCredential()
    model = make("entra-agent", auth="entra", api_key=None, credential=credential)
    hello = ModelRequest(messages=(ChatMessage("user", "hi"),))
    assert (await complete(model, hello)).text == "echo: hi"
    assert credential.scopes == [(AI_SCOPE,)]
    assert foundry.received("entra-agent")[-1].headers["authorization"] == "Bearer entra-1"


async def test_entra_without_a_configured_identity_fails_clearly(
    foundry: FakeFoundryProject, make: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    model = make("noid-agent", auth="entra", api_key=None)
    with pytest.raises(ProviderError, match="Entra ID sign-in failed") as caught:
        await complete(model, ModelRequest(messages=(ChatMessage("user", "hi"),)))
    assert "az login" in str(caught.value)
    assert foundry.received("noid-agent") == []


async def test_throttled_with_retry_after_is_sent_once(
    foundry: FakeFoundryProject, make: MakeModel
) -> None:
    body = error_body("Rate limit is exceeded. Try again in 20 seconds.", "rate_limit_exceeded")
    foundry.answer("busy-agent", Answer(status=429, body=body, headers={"retry-after": "20"}))
    with pytest.raises(ProviderError) as caught:
        await complete(make("busy-agent"), ModelRequest(messages=(ChatMessage("user", "hi"),)))
    assert caught.value.upstream_status == 429
    assert caught.value.retry_after == 20.0
    assert "Rate limit is exceeded" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(foundry.received("busy-agent")) == 1  # the SDK's own retries are off


async def test_server_error(foundry: FakeFoundryProject, make: MakeModel) -> None:
    body = error_body("The server had an error.", "server_error", "server_error")
    foundry.answer("down-agent", Answer(status=500, body=body))
    with pytest.raises(ProviderError) as caught:
        await complete(make("down-agent"), ModelRequest(messages=(ChatMessage("user", "hi"),)))
    assert caught.value.upstream_status == 500 and caught.value.retryable
    assert "HTTP 500: The server had an error." in str(caught.value)
    assert len(foundry.received("down-agent")) == 1


async def test_failed_response_event(foundry: FakeFoundryProject, make: MakeModel) -> None:
    events = Events().failed("server_error", "The agent run failed.")
    foundry.answer("failing-agent", Answer(events))
    with pytest.raises(ProviderError, match=r"the agent failed \(server_error\)") as caught:
        await complete(make("failing-agent"), ModelRequest(messages=(ChatMessage("user", "x"),)))
    assert caught.value.upstream_status == 500


async def test_malformed_stream(foundry: FakeFoundryProject, make: MakeModel) -> None:
    events = Events().events[:2] + [("response.output_text.delta", '{"type": "response.out')]
    foundry.answer("garbled-agent", Answer(events))
    with pytest.raises(ProviderError, match="malformed stream event"):
        await complete(make("garbled-agent"), ModelRequest(messages=(ChatMessage("user", "x"),)))


@pytest.mark.parametrize("drop", [True, False], ids=["connection-broken", "clean-eof"])
async def test_stream_dropped_before_the_end(
    foundry: FakeFoundryProject, make: MakeModel, drop: bool
) -> None:
    agent = f"drop-agent-{drop}"
    events = Events().message(["half ", "a reply"]).events  # no response.completed
    retried = Answer(Events().message(["whole"]).completed())
    foundry.answer(agent, Answer(events, drop=drop), retried)
    model = make(agent)
    seen: list[ModelEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in model.stream(ModelRequest(messages=(ChatMessage("user", "x"),))):
            seen.append(event)
    assert seen == [TextDelta("half "), TextDelta("a reply")]
    assert caught.value.retryable
    # the failed turn is not remembered: a retry starts a fresh conversation
    created = foundry.conversations_created()
    result = await complete(model, ModelRequest(messages=(ChatMessage("user", "x"),)))
    assert result.text == "whole"
    assert foundry.conversations_created() == created + 1


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="needs agent"):
        FoundryAgentModel(config("https://res.services.ai.azure.com/api/projects/p", ""))
    with pytest.raises(ConfigError, match="needs endpoint"):
        FoundryAgentModel(DeploymentConfig(name="r", provider="foundry_agent", agent="a"))


def test_missing_azure_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.ai.projects.aio", None)  # import fails
    monkeypatch.delitem(sys.modules, "cupola.models.foundry_agent")
    with pytest.raises(MissingDependency, match=r"pip install 'cupola\[azure\]'"):
        build_model(config("https://res.services.ai.azure.com/api/projects/p", "a"))


async def test_against_cupolas_own_foundry_endpoint(
    project: AIProjectClient, tls: tuple[LiveServer, Path], unique: str
) -> None:
    """End to end: a cupola agent served over HTTPS by a live cupola, reached as a remote
    Foundry agent. Its ``echo`` model renders the input it was given, which shows the remote
    conversation holding turn one while only turn two was sent."""
    live, cert = tls
    name = f"remote-{unique}"
    project.agents.create_version(
        agent_name=name, definition=PromptAgentDefinition(model="echo", instructions="Help.")
    )
    model = FoundryAgentModel(
        config(live.project_url, name, api_key="not-checked-on-loopback"),
        http_client=openai.DefaultAsyncHttpxClient(
            verify=ssl.create_default_context(cafile=str(cert))
        ),
    )
    try:
        turn1 = (ChatMessage("user", "turn one"),)
        first = await complete(model, ModelRequest(messages=turn1))
        turn2 = (*turn1, ChatMessage("assistant", first.text), ChatMessage("user", "turn two"))
        second = await complete(model, ModelRequest(messages=turn2))
    finally:
        await model.aclose()
    assert first.finish.reason == "stop" and second.finish.usage.input_tokens > 0
    assert second.text.splitlines() == [
        "system: Help.",
        "user: turn one",
        f"assistant: {first.text}".replace("\n", " / "),
        "user: turn two",
    ]


async def test_a_refused_turn_keeps_the_conversation_for_the_retry(
    foundry: FakeFoundryProject, make: MakeModel
) -> None:
    agent = "retry-agent"
    body = error_body("Rate limit is exceeded.", "rate_limit_exceeded")
    foundry.answer(
        agent,
        Answer(Events().message(["first"]).completed()),
        Answer(status=429, body=body, headers={"retry-after": "1"}),
        Answer(Events("resp_3").message(["second"]).completed()),
    )
    model = make(agent)
    turn1 = (ChatMessage("user", "one"),)
    await complete(model, ModelRequest(messages=turn1))
    turn2 = ModelRequest(
        messages=(*turn1, ChatMessage("assistant", "first"), ChatMessage("user", "two"))
    )
    with pytest.raises(ProviderError):
        await complete(model, turn2)
    assert (await complete(model, turn2)).text == "second"
    bodies = responses_of(foundry, agent)
    assert len({b["conversation"] for b in bodies}) == 1
    assert [b["input"] for b in bodies[1:]] == [
        [{"type": "message", "role": "user", "content": "two"}]
    ] * 2
