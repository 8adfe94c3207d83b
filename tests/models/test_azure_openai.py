"""The ``azure_openai`` adapter against a loopback fake of Azure OpenAI (fake_upstreams.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from fake_upstreams import (
    Answer,
    FakeAzureOpenAI,
    azure_chunk,
    azure_error,
    azure_prompt_filter_chunk,
    azure_text,
    azure_usage,
    serve,
)

from cupola.exceptions import ConfigError, ProviderError
from cupola.models.azure_openai import AzureOpenAIChatModel
from cupola.models.base import (
    ChatMessage,
    Finish,
    FunctionSpec,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    Usage,
    complete,
)
from cupola.models.credentials import COGNITIVE_SERVICES_SCOPE, ConnectionKeys
from cupola.models.registry import ModelRegistry, build_model
from cupola.secrets import SecretBox
from cupola.settings import DeploymentConfig, Settings
from cupola.store import SqlStore
from cupola.store.connections import ConnectionSecrets

KEY = "aoai-key-0123456789abcdef"
HELLO = ModelRequest(messages=(ChatMessage("user", "hello"),))
MakeModel = Callable[..., AzureOpenAIChatModel]


@pytest.fixture(scope="module")
def azure() -> Iterator[FakeAzureOpenAI]:
    upstream = FakeAzureOpenAI()
    with serve(upstream):
        yield upstream


def config(endpoint: str, **fields: Any) -> DeploymentConfig:
    data = {"name": "aoai", "provider": "azure_openai", "endpoint": endpoint, **fields}
    data.setdefault("api_key", KEY)
    return DeploymentConfig.model_validate(data)


@pytest.fixture
async def make(azure: FakeAzureOpenAI) -> AsyncIterator[MakeModel]:
    made: list[AzureOpenAIChatModel] = []

    def build(deployment: str, **fields: Any) -> AzureOpenAIChatModel:
        credential = fields.pop("credential", None)
        keys = fields.pop("keys", None)
        model = AzureOpenAIChatModel(
            config(azure.base_url, deployment=deployment, **fields),
            credential=credential,
            keys=keys,
        )
        made.append(model)
        return model

    yield build
    for model in made:
        await model.aclose()


async def events_of(model: AzureOpenAIChatModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


async def test_deployment_url_with_api_version(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    usage = azure_usage(9, 3, cached=4)
    azure.answer("gpt4o-prod", Answer(azure_text(["Hel", "lo", " there"], usage), done=True))
    events = await events_of(make("gpt4o-prod", api_version="2024-10-21"), HELLO)
    assert [e for e in events if isinstance(e, TextDelta)] == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta(" there"),
    ]
    assert events[-1] == Finish("stop", Usage(9, 3, 4), "gpt-4o-2024-11-20")
    seen = azure.received("gpt4o-prod")[-1]
    assert seen.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == KEY
    assert "authorization" not in seen.headers
    assert seen.body["stream"] is True
    assert seen.body["messages"] == [{"role": "user", "content": "hello"}]


async def test_v1_api_names_the_deployment_in_model(
    azure: FakeAzureOpenAI, make: MakeModel
) -> None:
    azure.answer("mini-v1", Answer(azure_text(["v1 ", "reply"]), done=True))
    model = AzureOpenAIChatModel(
        config(f"{azure.base_url}/openai/v1/", model="mini-v1", headers={"x-ms-client": "t"})
    )
    try:
        result = await complete(model, HELLO)
    finally:
        await model.aclose()
    assert result.text == "v1 reply"
    seen = azure.received("mini-v1")[-1]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.query == {}
    assert seen.body["model"] == "mini-v1"
    assert seen.headers["x-ms-client"] == "t"


async def test_tool_call_round_trip(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    call = {"index": 0, "id": "call_w1", "type": "function"}
    first = [
        azure_prompt_filter_chunk(),
        azure_chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**call, "function": {"name": "get_weather", "arguments": ""}}],
            }
        ),
        azure_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        azure_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Oslo"}'}}]}),
        azure_chunk({}, finish="tool_calls"),
        azure_chunk(usage=azure_usage(30, 12)),
    ]
    second = azure_text(["It is ", "snowing in Oslo."])
    azure.answer("tools", Answer(first, done=True), Answer(second, done=True))
    model = make("tools", api_version="2025-03-01-preview")
    tool = FunctionSpec(
        "get_weather", "Weather of a city", {"type": "object", "properties": {"city": {}}}
    )
    ask = ModelRequest(
        messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Weather in Oslo?")),
        tools=(tool,),
        max_output_tokens=200,
    )
    result = await complete(model, ask)
    assert result.tool_calls == [ToolCall("call_w1", "get_weather", '{"city": "Oslo"}')]
    assert result.finish.reason == "tool_calls"
    assert result.finish.usage == Usage(30, 12)
    answer = ModelRequest(
        messages=(
            *ask.messages,
            ChatMessage("assistant", tool_calls=tuple(result.tool_calls)),
            ChatMessage("tool", '{"sky": "snow"}', tool_call_id="call_w1", name="get_weather"),
        ),
        tools=(tool,),
        max_output_tokens=200,
    )
    final = await complete(model, answer)
    assert final.text == "It is snowing in Oslo."
    assert final.finish.reason == "stop"
    assert azure.received("tools")[-1].body == {
        "model": "tools",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_w1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_w1", "content": '{"sky": "snow"}'},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "parameters": {"type": "object", "properties": {"city": {}}},
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "max_tokens": 200,
    }


class CountingCredential:
    """A TokenCredential (the protocol azure-identity's credentials implement) that issues
    numbered tokens valid for ``lifetime`` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"entra-token-{len(self.scopes)}", int(time.time() + self.lifetime))


async def test_entra_bearer_token_is_cached(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    credential = CountingCredential(lifetime=3600)
    model = make("entra-dep", auth="entra", api_key=None, credential=credential)
    await complete(model, HELLO)
    await complete(model, HELLO)
    assert credential.scopes == [(COGNITIVE_SERVICES_SCOPE,)]
    for seen in azure.received("entra-dep"):
        assert seen.headers["authorization"] == "Bearer entra-token-1"
        assert "api-key" not in seen.headers


async def test_entra_token_near_expiry_is_renewed(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    credential = CountingCredential(lifetime=120)  # inside the five-minute renewal margin
    model = make("entra-renew", auth="entra", api_key=None, credential=credential)
    await complete(model, HELLO)
    await complete(model, HELLO)
    tokens = [s.headers["authorization"] for s in azure.received("entra-renew")]
    assert tokens == ["Bearer entra-token-1", "Bearer entra-token-2"]


async def test_entra_without_a_configured_identity_fails_clearly(
    azure: FakeAzureOpenAI, make: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DefaultAzureCredential restricted to its environment credential, with nothing set
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(var, raising=False)
    model = make("entra-none", auth="entra", api_key=None)
    with pytest.raises(ProviderError) as caught:
        await complete(model, HELLO)
    message = str(caught.value)
    assert message.startswith("deployment 'aoai': Microsoft Entra ID sign-in failed")
    assert "az login" in message and "AZURE_CLIENT_SECRET" in message
    assert "\n" not in message
    assert caught.value.upstream_status == 401 and not caught.value.retryable
    assert azure.received("entra-none") == []


async def test_key_from_a_project_connection(
    azure: FakeAzureOpenAI, database_url: str, tmp_path: Path, unique: str
) -> None:
    store = SqlStore(database_url)
    store.use_secret_box(SecretBox(key_file=tmp_path / "secret.key"))
    await store.open()
    project = f"p-{unique}"
    try:
        await store.create_or_replace_connection(
            project,
            "aoai-conn",
            type="AzureOpenAI",
            target=azure.base_url,
            credential_type="ApiKey",
            secret={"key": f"conn-key-{unique}"},
            metadata={"header_name": "api-key"},
        )
        settings = Settings.model_validate(
            {
                "project": project,
                "deployments": [
                    config(azure.base_url, name="conn-dep", api_key=None, connection="aoai-conn"),
                    config(azure.base_url, name="gone-dep", api_key=None, connection="gone"),
                ],
            }
        )
        registry = ModelRegistry(settings, secrets=ConnectionSecrets(store))
        try:
            result = await complete(registry.get("conn-dep"), HELLO)
            assert result.text == "echo: hello"
            assert azure.received("conn-dep")[-1].headers["api-key"] == f"conn-key-{unique}"
            gone = build_model(
                settings.deployments[1], secrets=ConnectionKeys(ConnectionSecrets(store), project)
            )
            with pytest.raises(ProviderError, match="connection 'gone' does not exist"):
                await complete(gone, HELLO)
        finally:
            await registry.aclose()
    finally:
        await store.close()


def test_missing_settings_fail_with_one_line(azure: FakeAzureOpenAI) -> None:
    with pytest.raises(ConfigError) as caught:
        AzureOpenAIChatModel(config(azure.base_url, api_key=None))
    assert str(caught.value) == (
        "deployment 'aoai' (azure_openai) has no credential: set api_key: ${ENV_VAR}, "
        "connection: <project connection> or auth: entra"
    )
    with pytest.raises(ConfigError, match="needs endpoint"):
        AzureOpenAIChatModel(DeploymentConfig(name="x", provider="azure_openai", api_key=KEY))
    with pytest.raises(ConfigError, match="can only be read by the server"):
        AzureOpenAIChatModel(config(azure.base_url, api_key=None, connection="c"))


async def test_throttled_with_retry_after(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    message = (
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded token rate limit of your current pricing tier."
    )
    answer = Answer(
        status=429,
        body=azure_error(429, "429", message),
        headers={"retry-after": "7", "retry-after-ms": "6500"},
    )
    azure.answer("busy", answer)
    with pytest.raises(ProviderError) as caught:
        await complete(make("busy", api_version="2024-10-21"), HELLO)
    assert caught.value.upstream_status == 429
    assert caught.value.retry_after == 6.5
    assert caught.value.retryable
    assert "exceeded token rate limit" in str(caught.value)
    assert KEY not in str(caught.value)


async def test_server_error(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    body = azure_error(500, "InternalServerError", "The service is temporarily unable to respond.")
    azure.answer("broken", Answer(status=500, body=body))
    with pytest.raises(ProviderError) as caught:
        await complete(make("broken"), HELLO)
    assert caught.value.upstream_status == 500
    assert caught.value.retry_after is None
    assert "HTTP 500: The service is temporarily unable to respond." in str(caught.value)


async def test_malformed_stream(azure: FakeAzureOpenAI, make: MakeModel) -> None:
    events = [azure_prompt_filter_chunk(), azure_chunk({"content": "ok"}), (None, '{"choices": [')]
    azure.answer("garbled", Answer(events, done=True))
    seen: list[ModelEvent] = []
    with pytest.raises(ProviderError, match="malformed stream event"):
        async for event in make("garbled").stream(HELLO):
            seen.append(event)
    assert seen == [TextDelta("ok")]


@pytest.mark.parametrize("drop", [True, False], ids=["connection-broken", "clean-eof"])
async def test_stream_dropped_before_the_end(
    azure: FakeAzureOpenAI, make: MakeModel, drop: bool
) -> None:
    name = f"dropped-{drop}"
    events = [azure_prompt_filter_chunk(), azure_chunk({"content": "half"})]
    azure.answer(name, Answer(events, drop=drop))
    seen: list[ModelEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in make(name).stream(HELLO):
            seen.append(event)
    assert seen == [TextDelta("half")]
    assert caught.value.upstream_status is None and caught.value.retryable


async def test_registry_builds_the_adapter(azure: FakeAzureOpenAI) -> None:
    model = build_model(config(azure.base_url, deployment="via-registry"))
    try:
        assert isinstance(model, AzureOpenAIChatModel)
        assert (await complete(model, HELLO)).text == "echo: hello"
    finally:
        await model.aclose()
