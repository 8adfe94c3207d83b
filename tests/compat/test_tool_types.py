"""Tool types beyond plain functions, through the openai SDK and raw HTTP against a live cupola:
``namespace`` tools (served as flattened functions, calls returned with their ``namespace``)
and hosted tool types cupola has no provider for (left out, recorded in the response
``metadata`` under ``cupola.omitted_tools``; a 400 only when ``tool_choice`` forces one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import live_server
from cupola.settings import DeploymentConfig
from live_server import LiveServer, make_settings, start_server
from spec import assert_valid_event, assert_valid_response, spec_errors

CRM: dict[str, Any] = {
    "type": "namespace",
    "name": "crm",
    "description": "The ticket system.",
    "tools": [
        {
            "type": "function",
            "name": "close_ticket",
            "description": "Close a ticket by id.",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
        },
        {"type": "function", "name": "open_ticket", "description": "Open a ticket."},
    ],
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CLERK = DeploymentConfig.model_validate(
    {
        "name": "clerk",
        "provider": "scripted",
        "mode": "script",
        "script": [
            {"match": "ticket 7 closed", "reply": "Ticket 7 is closed."},
            {
                "match": "close ticket 7",
                "tool_calls": [{"name": "crm__close_ticket", "arguments": {"id": 7}}],
            },
            {"reply": "Nothing to do."},
        ],
    }
)


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[LiveServer]:
    server = start_server(
        make_settings(database_url, deployments=[*live_server.test_deployments(), CLERK])
    )
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.openai_url, api_key="unused-on-loopback", max_retries=0)


def post(live: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{live.openai_url}/responses", json=body, timeout=30)


def error_of(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    error: dict[str, Any] = r.json()["error"]
    return error


def test_a_namespace_call_comes_back_with_its_namespace(client: openai.OpenAI) -> None:
    response = client.responses.create(model="clerk", input="close ticket 7", tools=[CRM])
    [call] = response.output
    assert call.type == "function_call"
    assert (call.namespace, call.name, json.loads(call.arguments)) == (
        "crm",
        "close_ticket",
        {"id": 7},
    )
    assert [t.type for t in response.tools] == ["namespace"]
    answer = client.responses.create(
        model="clerk",
        previous_response_id=response.id,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": "ticket 7 closed"}
        ],
        tools=[CRM],
    )
    assert answer.output_text == "Ticket 7 is closed."


def test_the_model_sees_namespace_functions_under_their_served_names(
    live: LiveServer, client: openai.OpenAI
) -> None:
    call = client.responses.create(model="clerk", input="close ticket 7", tools=[CRM]).output[0]
    assert call.type == "function_call"
    item = call.model_dump(exclude_none=True)
    assert not spec_errors("FunctionCall", item)
    # a stateless client (Codex sends store: false) sends the call back as it got it
    echoed = post(
        live,
        {
            "model": "echo",
            "store": False,
            "tools": [CRM],
            "input": [
                {"role": "user", "content": "close ticket 7"},
                item,
                {"type": "function_call_output", "call_id": call.call_id, "output": "done"},
            ],
        },
    )
    assert echoed.status_code == 200, echoed.text
    seen = echoed.json()["output"][0]["content"][0]["text"].splitlines()
    assert 'assistant: call crm__close_ticket({"id":7})' in seen
    assert seen[-1].startswith("tool[crm__close_ticket#")


def test_a_streamed_namespace_call_is_spec_valid(live: LiveServer) -> None:
    body = {"model": "clerk", "input": "close ticket 7", "tools": [CRM], "stream": True}
    with httpx.stream("POST", f"{live.openai_url}/responses", json=body) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    items = [e["item"] for e in events if e["type"].startswith("response.output_item.")]
    assert items and all(i["namespace"] == "crm" and i["name"] == "close_ticket" for i in items)
    for event in events:
        if "response" in event:
            # the spec's `Tool` knows function tools only: the echoed namespace is checked
            # here, the rest of the response against the spec
            assert event["response"]["tools"][0]["name"] == "crm"
            event = {**event, "response": {**event["response"], "tools": []}}
        assert_valid_event(event)


def test_tool_choice_can_force_a_namespace_function(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="clerk",
        input="close ticket 7",
        tools=[CRM],
        tool_choice={"type": "function", "name": "close_ticket", "namespace": "crm"},
    )
    assert response.output[0].type == "function_call"


@pytest.mark.parametrize(
    ("tools", "param", "says"),
    [
        ([WEATHER | {"name": "crm__close_ticket"}, CRM], "tools", "already uses"),
        ([CRM, CRM], "tools[1]", "declared twice"),
        ([CRM | {"tools": []}], "tools[0].tools", "non-empty list"),
        ([CRM | {"name": "crm.tickets"}], "tools[0].name", "letters, digits"),
        (
            [CRM | {"tools": [{"type": "mcp", "server_label": "x"}]}],
            "tools[0].tools[0].type",
            "groups function tools",
        ),
        ([CRM | {"tools": [WEATHER, WEATHER]}], "tools[0].tools[1]", "declared twice"),
    ],
)
def test_bad_namespaces_are_refused(
    live: LiveServer, tools: list[dict[str, Any]], param: str, says: str
) -> None:
    error = error_of(post(live, {"model": "echo", "input": "hi", "tools": tools}))
    assert error["param"] == param and says in error["message"]


def test_hosted_tools_without_a_provider_are_left_out_and_recorded(live: LiveServer) -> None:
    body = {
        "model": "weather-bot",
        "input": "What is the weather in Tokyo?",
        "tools": [
            {"type": "web_search", "external_web_access": False},
            WEATHER,
            {"type": "image_generation"},
        ],
        "metadata": {"team": "travel"},
    }
    r = post(live, body)
    assert r.status_code == 200, r.text
    response = r.json()
    assert_valid_response(response)
    assert response["metadata"] == {
        "team": "travel",
        "cupola.omitted_tools": '["web_search","image_generation"]',
    }
    assert [t["name"] for t in response["tools"]] == ["get_weather"]  # what the model had
    assert response["output"][0]["name"] == "get_weather"
    with httpx.stream("POST", f"{live.openai_url}/responses", json={**body, "stream": True}) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    for event in events:
        assert_valid_event(event)
    assert "cupola.omitted_tools" in events[-1]["response"]["metadata"]


def test_a_namespace_loses_only_its_unserved_members(live: LiveServer) -> None:
    custom = {"type": "custom", "name": "apply_patch", "description": "Patch files."}
    r = post(
        live,
        {
            "model": "clerk",
            "input": "close ticket 7",
            "tools": [CRM | {"tools": [*CRM["tools"], custom]}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["cupola.omitted_tools"] == '["custom"]'
    assert [t["name"] for t in r.json()["tools"][0]["tools"]] == ["close_ticket", "open_ticket"]


def test_full_client_metadata_is_kept_within_its_limit(live: LiveServer) -> None:
    metadata = {f"k{i}": "v" for i in range(16)}
    r = post(
        live,
        {"model": "echo", "input": "hi", "tools": [{"type": "web_search"}], "metadata": metadata},
    )
    assert r.status_code == 200, r.text
    assert r.json()["metadata"] == metadata
    assert_valid_response(r.json())


@pytest.mark.parametrize(
    ("choice", "says"),
    [
        ({"type": "web_search"}, "'web_search' (web search), which this server has no provider"),
        ({"type": "image_generation"}, "no provider"),
        ("required", "needs at least one tool this server can run"),
    ],
)
def test_forcing_a_tool_without_a_provider_is_refused(
    live: LiveServer, choice: Any, says: str
) -> None:
    body = {
        "model": "echo",
        "input": "hi",
        "tools": [{"type": "web_search"}, {"type": "image_generation"}],
        "tool_choice": choice,
    }
    error = error_of(post(live, body))
    assert (error["param"], error["code"]) == ("tool_choice", "unsupported_tool")
    assert says in error["message"]


def test_required_with_a_servable_tool_still_runs(live: LiveServer) -> None:
    body = {
        "model": "weather-bot",
        "input": "weather?",
        "tools": [{"type": "web_search"}, WEATHER],
        "tool_choice": "required",
    }
    r = post(live, body)
    assert r.status_code == 200, r.text


def test_an_unknown_tool_type_is_still_a_mistake(live: LiveServer) -> None:
    error = error_of(
        post(live, {"model": "echo", "input": "hi", "tools": [{"type": "web_browse"}]})
    )
    assert (error["param"], error["code"]) == ("tools[0].type", "unsupported_tool")


def test_an_agent_with_a_hosted_tool_runs_without_it(live: LiveServer, unique: str) -> None:
    agent = f"searcher-{unique}"
    created = httpx.post(
        f"{live.project_url}/agents/{agent}/versions",
        json={
            "definition": {"kind": "prompt", "model": "echo", "tools": [{"type": "bing_grounding"}]}
        },
    )
    assert created.status_code == 200, created.text
    r = post(live, {"agent_reference": {"type": "agent_reference", "name": agent}, "input": "hi"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["cupola.omitted_tools"] == '["bing_grounding"]'
