"""/healthz, /openapi.json, request ids, 405s."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from cupola.runtime.request import CreateResponse
from cupola.server.openapi import REF_TEMPLATE
from cupola.server.routes.connections import PutConnection
from cupola.server.schemas.chat import ChatCompletionRequest
from live_server import LiveServer
from spec import SPEC_PATH

PROJECT = "/api/projects/{project}"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def doc(server: LiveServer) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    document: dict[str, Any] = r.json()
    return document


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_healthz_and_request_id(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.headers["x-request-id"].startswith("req_")
    echoed = httpx.get(f"{server.url}/healthz", headers={"x-request-id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"


def test_openapi_lists_the_served_routes(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in [
        (f"{PROJECT}/openai/v1/responses", "post"),
        (f"{PROJECT}/openai/v1/responses/{{response_id}}", "get"),
        (f"{PROJECT}/openai/v1/responses/{{response_id}}/input_items", "get"),
        (f"{PROJECT}/openai/v1/conversations/{{conversation_id}}/items", "post"),
        (f"{PROJECT}/agents/{{agent_name}}/versions", "post"),
        (f"{PROJECT}/deployments", "get"),
        (f"{PROJECT}/toolboxes/{{name}}/mcp", "post"),
        ("/v1/responses", "post"),
        ("/v1/models", "get"),
        ("/healthz", "get"),
    ]:
        assert method in paths[path], (path, method)
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_every_path_parameter_is_declared(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")


def test_every_ref_resolves_and_every_schema_is_valid(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "([^"]+)"', text))
    assert refs
    schemas = doc["components"]["schemas"]
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in schemas, ref
    assert "$defs" not in text  # every definition was hoisted into components
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)


def test_request_bodies_are_the_models_the_server_validates_with(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for model in (CreateResponse, ChatCompletionRequest, PutConnection):
        expected = model.model_json_schema(ref_template=REF_TEMPLATE)
        expected.pop("$defs", None)
        assert schemas[model.__name__] == expected, model.__name__

    def body(path: str) -> dict[str, Any]:
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        return resolve(doc, content["application/json"]["schema"])

    assert {"input", "agent_reference"} <= set(body("/v1/responses")["properties"])
    chat = body("/v1/chat/completions")
    assert {"messages", "tools", "stream"} <= set(chat["properties"])
    assert set(chat["required"]) == {"model", "messages"}
    assert {"max_tokens", "system"} <= set(body("/anthropic/v1/messages")["properties"])
    assert set(body("/anthropic/v1/messages")["required"]) == {"model", "messages", "max_tokens"}
    counted = body(f"{PROJECT}/anthropic/v1/messages/count_tokens")["properties"]
    assert "messages" in counted and "max_tokens" not in counted
    put = doc["paths"][f"{PROJECT}/connections/{{name}}"]["put"]["requestBody"]["content"]
    assert set(resolve(doc, put["application/json"]["schema"])["required"]) == {
        "type",
        "target",
        "credentials",
    }
    # a body is declared exactly where a route reads one
    assert "requestBody" not in doc["paths"]["/v1/files/{file_id}"]["get"]


def test_file_upload_is_multipart(doc: dict[str, Any], server: LiveServer) -> None:
    for path in ("/v1/files", f"{PROJECT}/openai/v1/files"):
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        assert list(content) == ["multipart/form-data"]
        form = resolve(doc, content["multipart/form-data"]["schema"])
        assert set(form["required"]) == {"file", "purpose"}
        assert form["properties"]["file"]["format"] == "binary"
        assert "assistants" in form["properties"]["purpose"]["enum"]
    # what the document says is what the server takes
    files = {"file": ("a.txt", b"hello")}
    r = httpx.post(f"{server.url}/v1/files", files=files, data={"purpose": "assistants"})
    assert r.status_code == 200 and r.json()["object"] == "file"


def test_every_operation_declares_its_answers(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        responses = op["responses"]
        success = [s for s in responses if s.startswith("2")]
        assert success, (method, path)
        for status in success:
            if status != "204" and status != "202":
                assert responses[status]["content"], (method, path, status)
        error = resolve(doc, responses["4XX"]["content"]["application/json"]["schema"])
        if path.startswith("/anthropic") or "/anthropic/" in path:
            assert error["title"] == "AnthropicError", path
        elif path.endswith("/mcp"):
            assert "anyOf" in error  # JSON-RPC errors, or the OpenAI shape before MCP
        else:
            assert error["title"] == "OpenAIError", (method, path)
            assert set(resolve(doc, error["properties"]["error"])["required"]) == {
                "message",
                "type",
                "param",
                "code",
            }


def test_the_response_object_requires_what_open_responses_requires(doc: dict[str, Any]) -> None:
    spec = json.loads(SPEC_PATH.read_text())["components"]["schemas"]["ResponseResource"]
    ours = doc["components"]["schemas"]["ResponseObject"]
    assert set(spec["required"]) <= set(ours["required"])
    answer = doc["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]
    assert set(answer) == {"application/json", "text/event-stream"}


def test_list_operations_declare_their_query(doc: dict[str, Any]) -> None:
    params = doc["paths"]["/v1/vector_stores"]["get"]["parameters"]
    assert {p["name"] for p in params} == {"limit", "order", "after", "before"}
    order = next(p for p in params if p["name"] == "order")
    assert order["schema"]["enum"] == ["asc", "desc"]


def test_every_405_says_what_is_allowed(doc: dict[str, Any], server: LiveServer) -> None:
    checked = 0
    with httpx.Client(base_url=server.url) as http:
        for path, ops in doc["paths"].items():
            unused = next(m for m in METHODS if m not in ops)
            url = re.sub(r"\{project\}", server.settings.project, path)
            url = re.sub(r"\{\w+\}", "x", url)
            r = http.request(unused.upper(), url)
            assert r.status_code == 405, (unused, path, r.text)
            assert r.json()["error"]["code"] == "method_not_allowed"
            allowed = {m.upper() for m in ops} | ({"HEAD"} if "get" in ops else set())
            assert set(r.headers["allow"].split(", ")) == allowed, (path, r.headers["allow"])
            checked += 1
    assert checked == len(doc["paths"])


def test_a_route_without_an_operation_is_refused() -> None:
    """A new route cannot slip into the server undocumented: generating the document fails."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    from cupola.server.openapi import openapi_document

    async def undocumented(_request: Request) -> Response:
        return Response()

    with pytest.raises(RuntimeError, match="has no OpenAPI operation"):
        openapi_document([Mount("/v1", routes=[Route("/x", undocumented)])])
