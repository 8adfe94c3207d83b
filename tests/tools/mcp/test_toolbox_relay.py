"""What an upstream MCP server asks during a tool call reaches the caller of the toolbox
endpoint: its log messages, its sampling requests and its elicitation requests, each to the
client whose call caused it, and a client that cannot answer gets a clear tool error."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, types
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from live_server import LiveServer

SERVER = [sys.executable, str(Path(__file__).with_name("conformance_server.py"))]


@pytest.fixture(scope="module")
def toolbox_url(server: LiveServer) -> str:
    tool = {"type": "mcp", "server_label": "suite", "command": SERVER, "require_approval": "never"}
    r = httpx.post(f"{server.project_url}/toolboxes/relay/versions", json={"tools": [tool]})
    assert r.status_code == 200, r.text
    return f"{server.project_url}/toolboxes/relay/mcp"


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def call(
    url: str, tool: str, arguments: dict[str, Any], mode: str = "legacy", **callbacks: Any
) -> Any:
    """Call ``tool`` as an MCP client of the handshake era (``legacy``) or of 2026-07-28
    (``auto`` negotiates it), asking for log messages at ``info`` when it takes them."""
    log_level = "info" if "logging_callback" in callbacks and mode != "legacy" else None
    client = Client(streamable_http_client(url), mode=mode, log_level=log_level, **callbacks)
    async with client:
        if "logging_callback" in callbacks and mode == "legacy":
            await client.set_logging_level("info")
        return await client.call_tool(tool, arguments)


def test_sampling_goes_to_the_caller_and_its_answer_comes_back(toolbox_url: str) -> None:
    asked: list[str] = []

    async def sample(
        ctx: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        asked.append(content.text if isinstance(content, types.TextContent) else "")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="forty-two"),
            model="caller-model",
            stop_reason="endTurn",
        )

    result = asyncio.run(
        call(toolbox_url, "test_sampling", {"prompt": "meaning of life?"}, sampling_callback=sample)
    )
    assert asked == ["meaning of life?"]
    assert not result.is_error and text_of(result) == "LLM response: forty-two"


def test_elicitation_goes_to_the_caller(toolbox_url: str) -> None:
    async def elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        assert params.message == "who?"
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "a@x.io"})

    result = asyncio.run(
        call(toolbox_url, "test_elicitation", {"message": "who?"}, elicitation_callback=elicit)
    )
    assert not result.is_error
    assert "action=accept" in text_of(result) and "'username': 'ada'" in text_of(result)


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_log_messages_reach_the_caller_at_its_level(toolbox_url: str, mode: str) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    result = asyncio.run(
        call(toolbox_url, "test_tool_with_logging", {}, mode=mode, logging_callback=log)
    )
    assert not result.is_error
    assert [p.data for p in logs] == [
        "Tool execution started",
        "Tool processing data",
        "Tool completed",
    ]
    assert {p.level for p in logs} == {"info"}


def test_no_log_messages_unless_the_caller_asks(toolbox_url: str) -> None:
    logs: list[Any] = []

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def go() -> Any:
        transport = streamable_http_client(toolbox_url)
        async with Client(transport, mode="legacy", logging_callback=log) as client:
            return await client.call_tool("test_tool_with_logging", {})

    assert not asyncio.run(go()).is_error
    assert logs == []


def test_a_client_that_cannot_sample_gets_a_tool_error(toolbox_url: str) -> None:
    result = asyncio.run(call(toolbox_url, "test_sampling", {"prompt": "hi"}))
    assert result.is_error
    assert "sampling/createMessage" in text_of(result)  # the server could not ask


def test_concurrent_callers_each_get_their_own_answers(toolbox_url: str) -> None:
    def answering(word: str) -> Any:
        async def sample(
            ctx: ClientRequestContext, params: types.CreateMessageRequestParams
        ) -> types.CreateMessageResult:
            await asyncio.sleep(0.05)  # both calls are in flight at once
            return types.CreateMessageResult(
                role="assistant", content=types.TextContent(type="text", text=word), model="m"
            )

        return sample

    async def both() -> list[Any]:
        return await asyncio.gather(
            *(
                call(toolbox_url, "test_sampling", {"prompt": w}, sampling_callback=answering(w))
                for w in ("alpha", "beta", "gamma")
            )
        )

    results = asyncio.run(both())
    assert [text_of(r) for r in results] == [
        "LLM response: alpha",
        "LLM response: beta",
        "LLM response: gamma",
    ]
