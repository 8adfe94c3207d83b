"""Bad input gets a 4xx in the OpenAI error shape and leaves the store exactly as it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cupola.store.tables import metadata
from live_server import LiveServer

BAD_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": 5}}


def table_counts(server: LiveServer) -> dict[str, int]:
    with server.services.store.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


@pytest.fixture
def fixtures(server: LiveServer, unique: str) -> dict[str, str]:
    """An agent, a conversation and a response the bad requests can refer to."""
    base = server.project_url
    agent = f"agent-{unique}"
    r = httpx.post(
        f"{base}/agents/{agent}/versions",
        json={"definition": {"kind": "prompt", "model": "echo"}},
    )
    assert r.status_code == 200
    conv = httpx.post(f"{server.openai_url}/conversations", json={}).json()["id"]
    resp = httpx.post(f"{server.openai_url}/responses", json={"model": "echo", "input": "x"}).json()
    return {"agent": agent, "conversation": conv, "response": resp["id"]}


def cases(f: dict[str, str], oversized: bytes) -> list[tuple[str, str, Any, int, str | None]]:
    """(method, path under the project, body, expected status, expected param)."""
    agent, conv, resp = f["agent"], f["conversation"], f["response"]
    R = "/openai/v1/responses"
    return [
        ("POST", R, b"{not json", 400, None),
        ("POST", R, b"[1, 2]", 400, None),
        ("POST", R, {"model": "echo", "input": 42}, 400, "input"),
        ("POST", R, {"model": "echo", "input": "x", "temperature": "hot"}, 400, "temperature"),
        ("POST", R, {"model": "echo", "input": "x", "metadata": {"k": 1}}, 400, "metadata.k"),
        (
            "POST",
            R,
            {"model": "echo", "input": [{"role": "wizard", "content": "x"}]},
            400,
            "input[0]",
        ),
        ("POST", R, {"model": "no-such-model", "input": "x"}, 404, "model"),
        (
            "POST",
            R,
            {"input": "x", "agent_reference": {"name": "no-such-agent"}},
            404,
            "agent_name",
        ),
        (
            "POST",
            R,
            {"input": "x", "agent_reference": {"name": agent, "version": "9"}},
            404,
            "version",
        ),
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "conversation": "conv_missing"},
            404,
            "conversation",
        ),
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "previous_response_id": "resp_missing"},
            404,
            "response_id",
        ),
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "conversation": conv, "previous_response_id": resp},
            400,
            "conversation",
        ),
        ("POST", R, {"model": "echo", "input": "x", "tools": [BAD_TOOL]}, 400, "tools[0]"),
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "tools": [{"type": "function", "name": "bad name"}]},
            400,
            "tools[0].name",
        ),
        (
            "POST",
            R,
            {
                "model": "echo",
                "input": [
                    {"type": "function_call_output", "call_id": "call_unknown", "output": "{}"}
                ],
            },
            400,
            "input",
        ),
        ("POST", R, {"model": "echo", "input": "x", "tool_choice": "required"}, 400, "tool_choice"),
        ("POST", R, oversized, 413, None),
        ("GET", f"{R}/resp_missing", None, 404, "response_id"),
        ("DELETE", f"{R}/resp_missing", None, 404, "response_id"),
        ("GET", f"{R}/{resp}/input_items?limit=0", None, 400, "limit"),
        ("GET", "/openai/v1/conversations/conv_missing", None, 404, "conversation"),
        (
            "POST",
            f"/openai/v1/conversations/{conv}/items",
            {"items": [{"type": "bogus"}]},
            400,
            "items[0]",
        ),
        ("POST", f"/openai/v1/conversations/{conv}/items", {"items": "nope"}, 400, "items"),
        ("DELETE", f"/openai/v1/conversations/{conv}/items/msg_missing", None, 404, "item_id"),
        ("GET", "/agents/no-such-agent", None, 404, "agent_name"),
        ("GET", f"/agents/{agent}/versions/7", None, 404, "version"),
        ("GET", f"/agents/{agent}/versions/1.5", None, 400, "agent_version"),
        ("GET", f"/agents/{agent}/versions/prod", None, 404, "version"),  # no such label
        ("DELETE", f"/agents/{agent}/versions/latest", None, 400, "agent_version"),
        (
            "POST",
            f"/agents/{agent}/versions",
            {"definition": {"kind": "prompt", "model": "echo", "tools": [BAD_TOOL]}},
            400,
            "definition.tools[0]",
        ),
        (
            "POST",
            f"/agents/{agent}/versions",
            {"definition": {"kind": "prompt"}},
            400,
            "definition.model",
        ),
        (
            "POST",
            f"/agents/{agent}/versions",
            {"definition": {"kind": "prompt", "model": "echo", "temperature": 9}},
            400,
            "definition.temperature",
        ),
        (
            "POST",
            "/agents/bad name!/versions",
            {"definition": {"model": "echo"}},
            400,
            "agent_name",
        ),
        ("POST", f"/agents/{agent}/versions", {"definition": "prompt"}, 400, "definition"),
        ("DELETE", f"/agents/{agent}/versions/99", None, 404, "version"),
        ("GET", "/deployments/nope", None, 404, "model"),
        ("GET", "/no/such/route", None, 404, None),
    ]


def test_bad_requests_get_4xx_and_change_nothing(
    server: LiveServer, fixtures: dict[str, str]
) -> None:
    limit = server.settings.server.max_body_bytes
    oversized = b'{"model": "echo", "input": "' + b"x" * (limit + 10) + b'"}'
    before = table_counts(server)
    with httpx.Client(base_url=server.project_url, timeout=30) as http:
        for method, path, body, status, param in cases(fixtures, oversized):
            content = body if isinstance(body, bytes) else None
            json_body = None if isinstance(body, bytes) or body is None else body
            json_type = {"content-type": "application/json"} if content is not None else None
            r = http.request(method, path, content=content, json=json_body, headers=json_type)
            label = f"{method} {path} {str(body)[:80]}"
            assert r.status_code == status, (label, r.text[:300])
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, label
            assert error["message"], label
            assert error["param"] == param, (label, error)
    assert table_counts(server) == before


def test_unknown_project_is_404(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/api/projects/other/agents")
    assert r.status_code == 404 and r.json()["error"]["param"] == "project"
