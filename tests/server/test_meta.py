"""/healthz, /openapi.json, request ids."""

from __future__ import annotations

from typing import Any

import httpx

from live_server import LiveServer


def test_healthz_and_request_id(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.headers["x-request-id"].startswith("req_")
    echoed = httpx.get(f"{server.url}/healthz", headers={"x-request-id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"


def test_openapi_lists_the_served_routes(server: LiveServer) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    project = "/api/projects/{project}"
    for path, method in [
        (f"{project}/openai/v1/responses", "post"),
        (f"{project}/openai/v1/responses/{{response_id}}", "get"),
        (f"{project}/openai/v1/responses/{{response_id}}/input_items", "get"),
        (f"{project}/openai/v1/conversations/{{conversation_id}}/items", "post"),
        (f"{project}/agents/{{agent_name}}/versions", "post"),
        (f"{project}/deployments", "get"),
        ("/v1/responses", "post"),
        ("/healthz", "get"),
    ]:
        assert method in paths[path], (path, method)

    def body(path: str) -> dict[str, Any]:
        schema: dict[str, Any] = paths[path]["post"]["requestBody"]["content"]["application/json"]
        return schema["schema"]

    assert {"input", "agent_reference"} <= set(body("/v1/responses")["properties"])
    assert {"messages", "tools", "stream"} <= set(body("/v1/chat/completions")["properties"])
    assert {"max_tokens", "system"} <= set(body("/anthropic/v1/messages")["properties"])
    counted = body(f"{project}/anthropic/v1/messages/count_tokens")["properties"]
    assert "messages" in counted and "max_tokens" not in counted
    assert "get" in paths["/v1/models"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
