"""MCP tools and toolboxes end to end: the openai SDK against a live cupola whose agents call
the travel example's MCP server (over streamable HTTP and over stdio), and the mcp SDK's own
client against a toolbox endpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from live_server import LiveServer, free_port

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "travel-concierge"
STDIO = [sys.executable, str(EXAMPLE / "mcp_server.py")]


@pytest.fixture(scope="module")
def travel_url() -> Iterator[str]:
    """The travel MCP server over streamable HTTP, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [*STDIO, "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "MCP server did not start"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0, timeout=60)


def travel(url: str, approval: Any = "never") -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "travel",
        "server_url": url,
        "require_approval": approval,
    }


def types_of(response: Any) -> list[str]:
    return [item.type for item in response.output]


def test_agent_lists_calls_and_answers(client: openai.OpenAI, travel_url: str) -> None:
    response = client.responses.create(
        model="weather-bot", input="What is the weather in Tokyo?", tools=[travel(travel_url)]
    )
    assert response.status == "completed", response.error
    assert types_of(response) == ["mcp_list_tools", "mcp_call", "message"]
    listing, call, _ = response.output
    assert {t.name for t in listing.tools} == {  # type: ignore[union-attr]
        "get_weather",
        "get_flight_status",
        "get_hotel_info",
    }
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Tokyo"}  # type: ignore[union-attr]
    assert json.loads(call.output)["temperature_c"] == 20  # type: ignore[union-attr]
    assert response.output_text == "It is sunny in Tokyo, twenty degrees."


def test_tools_are_listed_once_per_conversation(client: openai.OpenAI, travel_url: str) -> None:
    conv = client.conversations.create()
    first = client.responses.create(
        model="weather-bot",
        input="weather in Tokyo?",
        tools=[travel(travel_url)],
        conversation=conv.id,
    )
    second = client.responses.create(
        model="weather-bot",
        input="weather again?",
        tools=[travel(travel_url)],
        conversation=conv.id,
    )
    assert types_of(first)[0] == "mcp_list_tools"
    assert "mcp_list_tools" not in types_of(second)
    assert types_of(second) == ["mcp_call", "message"]


def test_stdio_server_started_by_the_platform(
    server: LiveServer, client: openai.OpenAI, unique: str
) -> None:
    """A stdio server is defined server-side (here a toolbox) and used by name; a request
    naming the command itself is refused (tests/server/test_no_process_from_request.py)."""
    tool = {"type": "mcp", "server_label": "travel", "command": STDIO, "require_approval": "never"}
    box = f"stdio-{unique}"
    r = httpx.post(f"{server.project_url}/toolboxes/{box}/versions", json={"tools": [tool]})
    assert r.status_code == 200, r.text
    response = client.responses.create(
        model="weather-bot", input="weather in Tokyo?", tools=[{"type": "toolbox", "name": box}]
    )
    assert types_of(response) == ["mcp_list_tools", "mcp_call", "message"]
    assert response.output_text == "It is sunny in Tokyo, twenty degrees."


def test_approval_round_trip_approve(client: openai.OpenAI, travel_url: str) -> None:
    first = client.responses.create(
        model="weather-bot", input="weather in Tokyo?", tools=[travel(travel_url, "always")]
    )
    assert types_of(first) == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert request.name == "get_weather"  # type: ignore[union-attr]
    second = client.responses.create(
        model="weather-bot",
        previous_response_id=first.id,
        tools=[travel(travel_url, "always")],
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
    )
    assert types_of(second) == ["mcp_call", "message"]
    assert second.output[0].approval_request_id == request.id  # type: ignore[union-attr]
    assert second.output_text == "It is sunny in Tokyo, twenty degrees."
    with pytest.raises(openai.BadRequestError, match="already answered"):
        client.responses.create(
            model="weather-bot",
            previous_response_id=second.id,
            tools=[travel(travel_url, "always")],
            input=[
                {
                    "type": "mcp_approval_response",
                    "approval_request_id": request.id,
                    "approve": True,
                }
            ],
        )


def test_approval_round_trip_deny(client: openai.OpenAI, travel_url: str) -> None:
    first = client.responses.create(
        model="weather-bot", input="weather in Tokyo?", tools=[travel(travel_url, "always")]
    )
    request = first.output[-1]
    second = client.responses.create(
        model="weather-bot",
        previous_response_id=first.id,
        tools=[travel(travel_url, "always")],
        input=[
            {
                "type": "mcp_approval_response",
                "approval_request_id": request.id,
                "approve": False,
                "reason": "not now",
            }
        ],
    )
    assert types_of(second) == ["message"]
    assert second.output_text == "How can I help with your trip?"


def test_unreachable_server_is_an_item_error_not_a_failure(client: openai.OpenAI) -> None:
    dead = travel(f"http://127.0.0.1:{free_port()}/mcp")
    response = client.responses.create(model="echo", input="weather in Tokyo?", tools=[dead])
    assert response.status == "completed"
    listing = response.output[0]
    assert listing.type == "mcp_list_tools" and listing.error  # type: ignore[union-attr]
    assert "unreachable" in str(listing.error)  # type: ignore[union-attr]
    assert response.output[-1].type == "message"


def mcp_session_call(
    url: str, tool: str | None = None, arguments: dict[str, Any] | None = None
) -> Any:
    """List the endpoint's tools (and call one) with the mcp SDK's own client."""

    async def go() -> Any:
        async with (
            streamable_http_client(url) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            names = sorted(t.name for t in listed.tools)
            if tool is None:
                return names
            return await session.call_tool(tool, arguments or {})

    return asyncio.run(go())


def test_toolbox_endpoint_follows_the_default_version(
    server: LiveServer, client: openai.OpenAI, unique: str, travel_url: str
) -> None:
    name = f"travel-{unique}"
    base = server.project_url
    suite = {
        "type": "mcp",
        "server_label": "suite",
        "command": [sys.executable, str(Path(__file__).with_name("conformance_server.py"))],
        "require_approval": "never",
    }
    v1 = {"tools": [travel(travel_url)]}
    v2 = {"tools": [travel(travel_url), suite]}
    v3 = {"tools": [travel(travel_url), {**travel(travel_url), "server_label": "concierge"}]}
    for body in (v1, v2, v3):
        assert httpx.post(f"{base}/toolboxes/{name}/versions", json=body).status_code == 200
    url = f"{base}/toolboxes/{name}/mcp"
    travel_names = ["get_flight_status", "get_hotel_info", "get_weather"]
    assert mcp_session_call(url) == travel_names
    result = mcp_session_call(url, "get_weather", {"city": "Tokyo"})
    assert not result.is_error and json.loads(result.content[0].text)["city"] == "Tokyo"

    agent = f"agent-{unique}"
    r = httpx.post(
        f"{base}/agents/{agent}/versions",
        json={"definition": {"model": "weather-bot", "tools": [{"type": "toolbox", "name": name}]}},
    )
    assert r.status_code == 200, r.text
    ref = {"agent_reference": {"name": agent}}
    before = client.responses.create(input="weather in Tokyo?", extra_body=ref)
    assert [i.type for i in before.output] == ["mcp_list_tools", "mcp_call", "message"]

    assert httpx.patch(f"{base}/toolboxes/{name}", json={"default_version": "2"}).status_code == 200
    served = mcp_session_call(url)
    assert set(travel_names) < set(served) and "test_simple_text" in served
    assert mcp_session_call(f"{url}?version=1") == travel_names  # pinned
    after = client.responses.create(input="weather in Tokyo?", extra_body=ref)
    listed = {i.server_label for i in after.output if i.type == "mcp_list_tools"}  # type: ignore[union-attr]
    assert listed == {"travel", "suite"}  # the agent got version 2 with no redeploy

    # Two servers offering the same tool: both are served, each under its label.
    both = mcp_session_call(f"{url}?version=3")
    assert "travel__get_weather" in both and "concierge__get_weather" in both
    assert "get_weather" not in both

    unknown = mcp_session_call(url, "nope__tool", {})
    assert unknown.is_error
