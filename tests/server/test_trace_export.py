"""Open Responses trace export (issue 9): a conversation whose agent called an MCP tool on
each turn (the travel example's server, over streamable HTTP), exported through
``GET /traces/export`` in the AI GO! integration's shape: each ``mcp_call`` a
``function_call`` plus ``function_call_output``, the assistant message last with the
``conversation_id``. On every database backend."""

from __future__ import annotations

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
from click.testing import CliRunner

from cupola.cli.main import cli
from cupola.domain import Role
from live_server import LiveServer, free_port, make_settings, start_server
from spec import spec_errors

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge"


@pytest.fixture(scope="module")
def travel_url() -> Iterator[str]:
    """The travel MCP server over streamable HTTP, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "mcp_server.py"), "--http", "--port", str(port)],
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


def export(server: LiveServer, query: dict[str, Any]) -> httpx.Response:
    return httpx.get(f"{server.project_url}/traces/export", params=query, timeout=30)


def check_turn(turn: dict[str, Any], response: Any, conversation_id: str, asked: str) -> None:
    """One turn: the user's input, the MCP call as a call and its output, the answer."""
    mcp = next(item for item in response.output if item.type == "mcp_call")
    assert turn["response_id"] == response.id and turn["conversation_id"] == conversation_id
    assert turn["status"] == "completed"
    assert [i["role"] for i in turn["input"]] == ["user"]
    assert turn["input"][0]["content"] == [{"type": "input_text", "text": asked}]
    call, result, message = turn["items"]
    assert call["type"] == "function_call" and call["call_id"] == mcp.id
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Tokyo"}
    assert call["status"] == "completed"
    assert result["type"] == "function_call_output" and result["call_id"] == mcp.id
    assert json.loads(result["output"])["temperature_c"] == 20
    assert result["status"] == "completed"
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [
        {"type": "output_text", "text": response.output_text, "annotations": []}
    ]
    assert message["conversation_id"] == conversation_id
    assert len({call["id"], result["id"], message["id"]}) == 3
    for item, schema in zip(
        turn["items"], ("FunctionCall", "FunctionCallOutput", "Message"), strict=True
    ):
        assert spec_errors(schema, item) == [], item  # the published Open Responses shapes
    assert turn["usage"] == {
        "num_prompt_tokens": response.usage.input_tokens,
        "num_completion_tokens": response.usage.output_tokens,
    }


def test_a_conversation_exports_as_open_responses(server: LiveServer, travel_url: str) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0, timeout=60)
    tool: Any = {
        "type": "mcp",
        "server_label": "travel",
        "server_url": travel_url,
        "require_approval": "never",
    }
    conv = client.conversations.create()
    asked = ["What is the weather in Tokyo?", "And the weather tomorrow?"]
    turns = [
        client.responses.create(model="weather-bot", input=q, tools=[tool], conversation=conv.id)
        for q in asked
    ]
    assert [r.status for r in turns] == ["completed", "completed"]
    assert [i.type for i in turns[0].output] == ["mcp_list_tools", "mcp_call", "message"]

    r = export(server, {"conversation_id": conv.id, "format": "open-responses"})
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["object"] == "list" and document["format"] == "open-responses"
    assert document["conversation_id"] == conv.id
    assert [t["response_id"] for t in document["data"]] == [t.id for t in turns]
    for turn, response, question in zip(document["data"], turns, asked, strict=True):
        check_turn(turn, response, conv.id, question)

    # named responses, in the order named; exporting again gives the same document
    by_ids = export(server, {"response_ids": f"{turns[1].id},{turns[0].id}"})
    assert by_ids.status_code == 200, by_ids.text
    assert by_ids.json()["data"] == document["data"][::-1]
    assert export(server, {"conversation_id": conv.id}).json() == document


def test_a_plain_response_exports_its_answer(server: LiveServer) -> None:
    created = httpx.post(f"{server.openai_url}/responses", json={"model": "echo", "input": "hi"})
    response = created.json()
    r = export(server, {"response_ids": response["id"]})
    assert r.status_code == 200, r.text
    (turn,) = r.json()["data"]
    assert turn["conversation_id"] is None
    (message,) = turn["items"]
    assert message["content"][0]["text"] == response["output"][0]["content"][0]["text"]
    assert message["conversation_id"] == ""


@pytest.mark.parametrize(
    ("query", "status", "param"),
    [
        ({}, 400, "conversation_id"),
        ({"conversation_id": "conv_x", "response_ids": "resp_x"}, 400, "conversation_id"),
        ({"response_ids": ","}, 400, "response_ids"),
        ({"response_ids": [f"resp_{i}" for i in range(101)]}, 400, "response_ids"),
        ({"conversation_id": "conv_x", "format": "otlp"}, 400, "format"),
        ({"conversation_id": "conv_nope"}, 404, "conversation"),
        ({"response_ids": "resp_a,resp_nope"}, 404, "response_id"),
    ],
)
def test_bad_requests_are_4xx(
    server: LiveServer, query: dict[str, Any], status: int, param: str
) -> None:
    r = export(server, query)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param, error


def test_cupola_export(server: LiveServer, tmp_path: Path) -> None:
    """``cupola export --conversation`` writes what the API returns; ``--response`` too."""
    conv = httpx.post(f"{server.openai_url}/conversations", json={}).json()["id"]
    made = httpx.post(
        f"{server.openai_url}/responses",
        json={"model": "echo", "input": "hello there", "conversation": conv},
    ).json()
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    env = {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": server.url}
    runner = CliRunner()
    out = tmp_path / "trace.json"
    result = runner.invoke(cli, ["export", "--conversation", conv, "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote 1 turns to {out}"
    written = json.loads(out.read_text())
    assert written == export(server, {"conversation_id": conv}).json()
    (turn,) = written["data"]
    assert turn["response_id"] == made["id"] and turn["items"][-1]["conversation_id"] == conv
    printed = runner.invoke(cli, ["export", "--response", made["id"]], env=env)
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["data"] == written["data"]
    both = runner.invoke(cli, ["export", "--conversation", conv, "--response", "x"], env=env)
    assert both.exit_code != 0 and "not both" in both.output


def test_a_reader_key_may_export(database_url: str) -> None:
    """Exporting reads stored responses: the reader role is enough (server/access.py)."""
    live = start_server(make_settings(database_url, auth={"required": "always"}))
    try:
        reader = live.services.store.create_key_sync("export-reader", "default", Role.READER)[1]
        url = f"{live.project_url}/traces/export"
        query = {"conversation_id": "conv_none"}
        assert httpx.get(url, params=query).status_code == 401
        r = httpx.get(url, params=query, headers={"Authorization": f"Bearer {reader}"})
        assert r.status_code == 404, r.text  # let through, and told the conversation is unknown
    finally:
        live.stop()
