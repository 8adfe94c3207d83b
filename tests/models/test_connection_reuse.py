"""Upstream connections are pooled and reused, for every HTTP adapter.

Each fake upstream counts the TCP connections it accepts (``loopback.Connections``). After
a warm-up call, 100 sequential calls must open no new connection (before, every call
opened one: the body was left unread after ``[DONE]``, so the connection was closed), and
rounds of concurrent calls open at most one connection per concurrent call, once.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import fake_chat_upstream
import openai
import pytest
from fake_chat_upstream import FakeChatUpstream, Reply, text_chunks
from fake_foundry import FakeFoundryProject
from fake_upstreams import (
    Answer,
    FakeAnthropic,
    FakeAzureOpenAI,
    FakeUpstream,
    anthropic_error,
    azure_error,
    serve,
)

from cupola.exceptions import ProviderError
from cupola.models.anthropic import AnthropicModel
from cupola.models.azure_openai import AzureOpenAIChatModel
from cupola.models.base import ChatMessage, Model, ModelRequest, complete
from cupola.models.foundry_agent import FoundryAgentModel
from cupola.models.openai import OpenAIChatModel
from cupola.settings import DeploymentConfig
from live_server import self_signed_cert

fake_upstream = fake_chat_upstream.fake_upstream  # the shared fixture, session-scoped

HELLO = ModelRequest(messages=(ChatMessage("user", "hello"),))
KEY = "reuse-key-0123456789"
SEQUENTIAL = 100
CONCURRENT = 12
ROUNDS = 4
Counted = FakeChatUpstream | FakeUpstream


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("reuse-tls"))


@pytest.fixture(scope="module")
def azure() -> Iterator[FakeAzureOpenAI]:
    upstream = FakeAzureOpenAI()
    with serve(upstream):
        yield upstream


@pytest.fixture(scope="module")
def anthropic_tls(cert: tuple[Path, Path]) -> Iterator[FakeAnthropic]:
    upstream = FakeAnthropic()
    with serve(upstream, cert):
        yield upstream


@pytest.fixture(scope="module")
def foundry(cert: tuple[Path, Path]) -> Iterator[FakeFoundryProject]:
    upstream = FakeFoundryProject()
    with serve(upstream, cert):
        yield upstream


def deployment(provider: str, **fields: object) -> DeploymentConfig:
    return DeploymentConfig.model_validate(
        {"name": f"reuse-{provider}", "provider": provider, "api_key": KEY, **fields}
    )


async def sequential(model: Model, upstream: Counted, calls: int = SEQUENTIAL) -> int:
    """Connections opened by ``calls`` sequential calls after a warm-up call."""
    assert (await complete(model, HELLO)).text
    before = upstream.connections.accepted
    for _ in range(calls):
        await complete(model, HELLO)
    return upstream.connections.accepted - before


async def concurrent(call: Callable[[], Awaitable[object]], upstream: Counted) -> int:
    """Connections opened by ``ROUNDS`` rounds of ``CONCURRENT`` calls at once."""
    before = upstream.connections.accepted
    for _ in range(ROUNDS):
        await asyncio.gather(*(call() for _ in range(CONCURRENT)))
    return upstream.connections.accepted - before


@pytest.fixture
async def closing() -> AsyncIterator[list[Model]]:
    models: list[Model] = []
    yield models
    for model in models:
        await model.aclose()


async def test_openai_sequential_calls_reuse_one_connection(
    fake_upstream: FakeChatUpstream, closing: list[Model]
) -> None:
    model = OpenAIChatModel(deployment("openai", model="m-reuse", base_url=fake_upstream.base_url))
    closing.append(model)
    assert await sequential(model, fake_upstream) == 0


async def test_openai_non_streamed_and_error_answers_keep_the_connection(
    fake_upstream: FakeChatUpstream, closing: list[Model]
) -> None:
    """An upstream that answers one JSON completion, or an error status, leaves the
    connection reusable too."""
    json_model = "m-reuse-json"
    fake_upstream.reply(json_model, Reply(text_chunks(["whole"]), ignore_stream=True))
    model = OpenAIChatModel(deployment("openai", model=json_model, base_url=fake_upstream.base_url))
    closing.append(model)
    assert await sequential(model, fake_upstream, 30) == 0

    failing = "m-reuse-429"
    error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "429"}}
    fake_upstream.reply(failing, Reply(status=429, error=error))
    bad = OpenAIChatModel(deployment("openai", model=failing, base_url=fake_upstream.base_url))
    closing.append(bad)
    with pytest.raises(ProviderError, match="Rate limit reached"):
        await complete(bad, HELLO)
    before = fake_upstream.connections.accepted
    for _ in range(30):
        with pytest.raises(ProviderError, match="HTTP 429"):
            await complete(bad, HELLO)
    assert fake_upstream.connections.accepted == before


async def test_openai_concurrent_calls_do_not_pile_up_connections(
    fake_upstream: FakeChatUpstream, closing: list[Model]
) -> None:
    model = OpenAIChatModel(
        deployment("openai", model="m-reuse-many", base_url=fake_upstream.base_url)
    )
    closing.append(model)
    opened = await concurrent(lambda: complete(model, HELLO), fake_upstream)
    assert opened <= CONCURRENT  # the pool grows to the concurrency once, then reuses
    assert fake_upstream.connections.open >= 1  # kept alive, not closed after each call


async def test_azure_openai_reuses_connections(
    azure: FakeAzureOpenAI, closing: list[Model]
) -> None:
    model = AzureOpenAIChatModel(
        deployment(
            "azure_openai", endpoint=azure.base_url, deployment="gpt-4o", api_version="2024-10-21"
        )
    )
    closing.append(model)
    assert await sequential(model, azure) == 0
    assert await concurrent(lambda: complete(model, HELLO), azure) <= CONCURRENT

    azure.answer("gpt-4o-busy", Answer(status=503, body=azure_error(503, "503", "busy")))
    busy = AzureOpenAIChatModel(
        deployment("azure_openai", endpoint=azure.base_url, deployment="gpt-4o-busy")
    )
    closing.append(busy)
    with pytest.raises(ProviderError):
        await complete(busy, HELLO)
    before = azure.connections.accepted
    for _ in range(20):
        with pytest.raises(ProviderError, match="HTTP 503"):
            await complete(busy, HELLO)
    assert azure.connections.accepted == before


async def test_anthropic_over_tls_reuses_connections(
    anthropic_tls: FakeAnthropic, cert: tuple[Path, Path], closing: list[Model]
) -> None:
    """Against an HTTPS upstream a new connection is also a TLS handshake: none after the
    first, counting tokens included."""
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=cert[0]))
    async with aiohttp.ClientSession(connector=connector) as session:
        model = AnthropicModel(
            deployment("anthropic", endpoint=anthropic_tls.base_url, model="claude-reuse"),
            session=session,
        )
        closing.append(model)
        assert await sequential(model, anthropic_tls) == 0
        before = anthropic_tls.connections.accepted
        for _ in range(10):
            assert (await model.count_tokens(HELLO) or 0) > 0
        assert anthropic_tls.connections.accepted == before
        opened = await concurrent(lambda: complete(model, HELLO), anthropic_tls)
        assert opened <= CONCURRENT

        overloaded = anthropic_error("overloaded_error", "Overloaded")
        anthropic_tls.answer("claude-busy", Answer(status=529, body=overloaded))
        busy = AnthropicModel(
            deployment("anthropic", endpoint=anthropic_tls.base_url, model="claude-busy"),
            session=session,
        )
        with pytest.raises(ProviderError):
            await complete(busy, HELLO)
        before = anthropic_tls.connections.accepted
        for _ in range(20):
            with pytest.raises(ProviderError, match="HTTP 529"):
                await complete(busy, HELLO)
        assert anthropic_tls.connections.accepted == before


async def test_foundry_agent_reuses_connections(
    foundry: FakeFoundryProject, cert: tuple[Path, Path], closing: list[Model]
) -> None:
    """The remote agent's Responses stream is read to its end after ``response.completed``
    (one conversation per history, so every call here is a fresh conversation)."""
    model = FoundryAgentModel(
        deployment(
            "foundry_agent", endpoint=foundry.project_url(), agent="reuse-agent", api_key=KEY
        ),
        http_client=openai.DefaultAsyncHttpxClient(
            verify=ssl.create_default_context(cafile=cert[0])
        ),
    )
    closing.append(model)
    assert (await complete(model, HELLO)).text
    before = foundry.connections.accepted
    for turn in range(SEQUENTIAL // 2):
        request = ModelRequest(messages=(ChatMessage("user", f"hello {turn}"),))
        assert (await complete(model, request)).text
    # httpcore may drop a fresh TLS connection once when it finds the server's TLS 1.3
    # session tickets unread on it (it then looks readable, hence stale): at most one new
    # connection, where every call opened one before.
    assert foundry.connections.accepted - before <= 1
