"""Bad input gets a 4xx in the OpenAI error shape and leaves the store exactly as it was."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cupola.store.tables import metadata
from live_server import LiveServer

BAD_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": 5}}


def _counts(server: LiveServer) -> dict[str, int]:
    with server.services.store.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


def table_counts(server: LiveServer) -> dict[str, int]:
    """Row counts of every table, once the spans of earlier runs have been written: they
    are written in batches, and a flush can return while a batch is still in flight, so
    the counts are read until they hold still for a moment (at most 5 s)."""
    telemetry = server.services.telemetry
    if telemetry is None:
        return _counts(server)
    telemetry.force_flush()
    counts = _counts(server)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.3)
        telemetry.force_flush()
        again = _counts(server)
        if again == counts:
            break
        counts = again
    return counts


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


# ---- issue 8: each of these answered 500 (or was accepted) before -------------------------


def nested_schema(levels: int) -> dict[str, Any]:
    """A function parameter schema with ``levels`` objects inside each other."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def openapi_tool(schema: dict[str, Any], components: dict[str, Any] | None = None) -> Any:
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {
            "/x": {
                "post": {
                    "operationId": "x",
                    "requestBody": {"content": {"application/json": {"schema": schema}}},
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    if components:
        spec["components"] = {"schemas": components}
    return {
        "type": "openapi",
        "openapi": {"name": "t", "spec": spec, "auth": {"type": "anonymous"}},
    }


def ref_chain(length: int) -> dict[str, Any]:
    """Component schemas each holding a ``$ref`` to the next: deep once inlined."""
    chain: dict[str, Any] = {
        f"S{i}": {"type": "object", "properties": {"a": {"$ref": f"#/components/schemas/S{i + 1}"}}}
        for i in range(length)
    }
    chain[f"S{length}"] = {"type": "string"}
    return chain


DEEP = nested_schema(100)
DEEP_TOOL = {"type": "function", "name": "f", "parameters": DEEP}
DEEP_CHAT_TOOL = {"type": "function", "function": {"name": "f", "parameters": DEEP}}
BAD_REF = {
    "type": "function",
    "name": "f",
    "parameters": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
}
FAR_REF = {
    "type": "function",
    "name": "f",
    "parameters": {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
}
GOOD_REF = {
    "type": "function",
    "name": "f",
    "parameters": {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/city"}},
        "$defs": {"city": {"type": "string"}},
    },
}
HUGE = "99999999999999999999999"
MSG = [{"role": "user", "content": "hi"}]


def hardening_cases(f: dict[str, str]) -> list[tuple[str, str, Any, int, str | None]]:
    """(method, path under the project, JSON body, expected status, expected param)."""
    agent, conv = f["agent"], f["conversation"]
    R, C = "/openai/v1/responses", "/openai/v1/chat/completions"
    V = f"/agents/{agent}/versions"
    nul = "a\u0000b"
    return [
        # NUL in any text field or id: PostgreSQL's text and jsonb cannot hold it
        ("POST", R, {"model": "echo", "input": nul}, 400, "input"),
        ("POST", R, {"model": "echo", "input": [{"role": "user", "content": nul}]}, 400, None),
        ("POST", R, {"model": "echo", "input": "x", "metadata": {"k": nul}}, 400, "metadata.k"),
        ("POST", R, {"model": "echo", "input": "x", "instructions": nul}, 400, "instructions"),
        ("POST", R, {"model": nul, "input": "x"}, 400, "model"),
        ("POST", R, {"model": "echo", "input": "x", "previous_response_id": nul}, 400, None),
        ("POST", "/openai/v1/conversations", {"metadata": {nul: "v"}}, 400, "metadata"),
        ("POST", f"/openai/v1/conversations/{conv}", {"metadata": {"k": nul}}, 400, None),
        (
            "POST",
            f"/openai/v1/conversations/{conv}/items",
            {"items": [{"type": "message", "role": "user", "content": nul}]},
            400,
            None,
        ),
        (
            "POST",
            V,
            {"definition": {"kind": "prompt", "model": "echo", "instructions": nul}},
            400,
            None,
        ),
        ("POST", V, {"definition": {"model": "echo"}, "description": nul}, 400, "description"),
        ("POST", C, {"model": "echo", "messages": [{"role": "user", "content": nul}]}, 400, None),
        ("POST", "/toolboxes/tb/versions", {"tools": [], "description": nul}, 400, None),
        ("GET", f"{R}/resp_%00x", None, 400, None),
        ("DELETE", f"{R}/resp_%00x", None, 400, None),
        ("GET", f"/openai/v1/conversations/{conv}/items?after=%00", None, 400, None),
        ("GET", "/agents/a%00b", None, 400, None),
        # function parameter schemas nested ~100 deep (RecursionError)
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "tools": [DEEP_TOOL]},
            400,
            "tools[0].parameters",
        ),
        (
            "POST",
            R,
            {
                "model": "echo",
                "input": "x",
                "text": {"format": {"type": "json_schema", "name": "o", "schema": DEEP}},
            },
            400,
            "text.format.schema",
        ),
        (
            "POST",
            V,
            {"definition": {"kind": "prompt", "model": "echo", "tools": [DEEP_TOOL]}},
            400,
            "definition.tools[0].parameters",
        ),
        ("POST", C, {"model": "echo", "messages": MSG, "tools": [DEEP_CHAT_TOOL]}, 400, None),
        (
            "POST",
            C,
            {
                "model": "echo",
                "messages": MSG,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "o", "schema": DEEP},
                },
            },
            400,
            None,
        ),
        ("POST", "/toolboxes/tb/versions", {"tools": [openapi_tool(DEEP)]}, 400, None),
        (
            "POST",
            "/toolboxes/tb/versions",
            {"tools": [openapi_tool({"$ref": "#/components/schemas/S0"}, ref_chain(150))]},
            400,
            None,
        ),
        # overlong version numbers, in the path and in bodies
        ("GET", f"{V}/{HUGE}", None, 400, "agent_version"),
        ("DELETE", f"{V}/{HUGE}", None, 400, "agent_version"),
        ("GET", f"{V}?after={HUGE}", None, 400, "agent_version"),
        (
            "POST",
            R,
            {"input": "x", "agent_reference": {"name": agent, "version": HUGE}},
            400,
            "agent_reference.version",
        ),
        (
            "POST",
            R,
            {"input": "x", "agent_reference": {"name": agent, "version": int(HUGE)}},
            400,
            "agent_reference.version",
        ),
        (
            "POST",
            R,
            {"input": "x", "agent_reference": {"name": agent, "version": "9" * 5000}},
            400,
            "agent_reference.version",
        ),
        ("GET", f"/toolboxes/tb/versions/{HUGE}", None, 400, "version"),
        ("PATCH", "/toolboxes/tb", {"default_version": HUGE}, 400, "default_version"),
        (
            "POST",
            V,
            {
                "definition": {
                    "kind": "prompt",
                    "model": "echo",
                    "tools": [{"type": "toolbox", "name": "tb", "version": HUGE}],
                }
            },
            400,
            "definition.tools[0].version",
        ),
        # strict booleans
        ("POST", R, {"model": "echo", "input": "x", "stream": "yes"}, 400, "stream"),
        ("POST", R, {"model": "echo", "input": "x", "store": "true"}, 400, "store"),
        ("POST", R, {"model": "echo", "input": "x", "background": 1}, 400, "background"),
        ("POST", R, {"model": "echo", "input": "x", "parallel_tool_calls": "no"}, 400, None),
        (
            "POST",
            R,
            {
                "model": "echo",
                "input": "x",
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "o",
                        "schema": {"type": "object"},
                        "strict": "yes",
                    }
                },
            },
            400,
            "text.format.strict",
        ),
        ("POST", C, {"model": "echo", "messages": MSG, "stream": "yes"}, 400, "stream"),
        ("POST", C, {"model": "echo", "messages": MSG, "logprobs": "true"}, 400, "logprobs"),
        (
            "POST",
            C,
            {
                "model": "echo",
                "messages": MSG,
                "stream": True,
                "stream_options": {"include_usage": 1},
            },
            400,
            None,
        ),
        (
            "PUT",
            "/connections/c1",
            {"category": "CustomKeys", "target": "http://x", "isDefault": "yes"},
            400,
            None,
        ),
        # $ref to nowhere, and a toolbox that does not exist
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "tools": [BAD_REF]},
            400,
            "tools[0].parameters",
        ),
        (
            "POST",
            R,
            {"model": "echo", "input": "x", "tools": [FAR_REF]},
            400,
            "tools[0].parameters",
        ),
        (
            "POST",
            V,
            {"definition": {"kind": "prompt", "model": "echo", "tools": [BAD_REF]}},
            400,
            "definition.tools[0].parameters",
        ),
        (
            "POST",
            C,
            {
                "model": "echo",
                "messages": MSG,
                "tools": [{"type": "function", "function": BAD_REF}],
            },
            400,
            None,
        ),
        (
            "POST",
            V,
            {
                "definition": {
                    "kind": "prompt",
                    "model": "echo",
                    "tools": [{"type": "toolbox", "name": "no-such-toolbox"}],
                }
            },
            404,
            "definition.tools[0].name",
        ),
    ]


def test_former_500s_are_4xx_and_change_nothing(
    server: LiveServer, fixtures: dict[str, str]
) -> None:
    before = table_counts(server)
    with httpx.Client(base_url=server.project_url, timeout=30) as http:
        for method, path, body, status, param in hardening_cases(fixtures):
            r = http.request(method, path, json=body)
            label = f"{method} {path} {str(body)[:100]}"
            assert r.status_code == status, (label, r.text[:300])
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, label
            assert error["message"], label
            if param is not None:
                assert error["param"] == param, (label, error)
    assert table_counts(server) == before


def test_nul_and_depth_messages_say_what_is_wrong(server: LiveServer) -> None:
    r = httpx.post(f"{server.openai_url}/responses", json={"model": "echo", "input": "a\u0000"})
    assert "NUL" in r.json()["error"]["message"]
    r = httpx.post(
        f"{server.openai_url}/responses", json={"model": "echo", "input": "x", "tools": [DEEP_TOOL]}
    )
    assert "nested more than 64 levels" in r.json()["error"]["message"]
    r = httpx.post(
        f"{server.openai_url}/responses", json={"model": "echo", "input": "x", "tools": [BAD_REF]}
    )
    assert "#/$defs/missing" in r.json()["error"]["message"]


def test_anthropic_stream_must_be_a_boolean(server: LiveServer) -> None:
    r = httpx.post(
        f"{server.url}/anthropic/v1/messages",
        json={"model": "echo", "max_tokens": 10, "messages": MSG, "stream": "yes"},
    )
    assert r.status_code == 400, r.text
    assert "stream" in r.text


def test_what_the_new_checks_still_accept(server: LiveServer, unique: str) -> None:
    """A local ``$ref`` that resolves, a schema a few levels deep, a literal backslash-u0000
    (six characters, not NUL) and real booleans all still work."""
    body = {
        "model": "echo",
        "input": "a \\u0000 stays text",
        "tools": [GOOD_REF, {"type": "function", "name": "g", "parameters": nested_schema(20)}],
        "stream": False,
        "store": True,
    }
    r = httpx.post(f"{server.openai_url}/responses", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["output"][0]["content"][0]["text"].endswith("a \\u0000 stays text")
    r = httpx.post(
        f"{server.project_url}/agents/tb-user-{unique}/versions",
        json={"definition": {"kind": "prompt", "model": "echo", "tools": [GOOD_REF]}},
    )
    assert r.status_code == 200, r.text


def test_a_nul_in_an_uploaded_file_name_is_400(server: LiveServer) -> None:
    """Multipart fields reach the store without JSON: the upload route refuses NUL in them."""
    before = table_counts(server)
    r = httpx.post(
        f"{server.openai_url}/files",
        files={"file": ("a\x00b.txt", b"hello")},
        data={"purpose": "assistants"},
    )
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["error"]["message"]
    assert table_counts(server) == before
