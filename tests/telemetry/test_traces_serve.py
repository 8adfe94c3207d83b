"""One trace per run, end to end: ``cupola serve`` (its own process) answers a response
whose model calls a server-side OpenAPI tool; the run's trace (``invoke_agent`` over
``chat``, ``execute_tool``, ``chat``) continues the caller's ``traceparent``, comes back as
``x-cupola-trace-id``, is read back through the traces API, and reaches a real gRPC OTLP
receiver. The connection's secret, which the tool's answer and the user's input both
carry, is in no stored or exported span."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from otlp_receiver import Received, attributes, grpc_receiver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from live_server import serve_process
from loopback import serve_app

SECRET = "sk-tele-" + secrets.token_hex(12)
CALLER_TRACE = secrets.token_hex(16)
CALLER_SPAN = secrets.token_hex(8)
SCRIPT = [
    {"match": '"authorization"', "reply": "Your headers arrived."},
    {"match": "(?i)headers", "tool_calls": [{"name": "accounts_echoHeaders", "arguments": {}}]},
    {"reply": "Ask me about your headers."},
]


@pytest.fixture(scope="module")
def echo_api() -> Iterator[str]:
    """An API that answers every request with the headers it received (the key included)."""

    async def headers(request: Request) -> Response:
        return JSONResponse(dict(request.headers))

    app = Starlette(routes=[Route("/headers", headers, methods=["GET"])])
    with serve_app(app, "echo-api") as port:
        yield f"http://127.0.0.1:{port}"


def openapi_tool(base_url: str, connection: str) -> dict[str, Any]:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "Echo", "version": "1"},
        "servers": [{"url": base_url}],
        "paths": {"/headers": {"get": {"operationId": "echoHeaders"}}},
    }
    return {
        "type": "openapi",
        "openapi": {
            "name": "accounts",
            "spec": spec,
            "auth": {
                "type": "project_connection",
                "security_scheme": {"project_connection_id": connection},
            },
        },
    }


def write_config(path: Path, database_url: str, otlp: str) -> Path:
    config = {
        "project": "default",
        "database_url": database_url,
        "data_dir": str(path / "data"),
        "deployments": [
            {"name": "header-bot", "provider": "scripted", "mode": "script", "script": SCRIPT}
        ],
        "telemetry": {
            "capture_content": True,
            "export_delay_seconds": 0.2,
            "otlp_endpoint": otlp,
            "otlp_protocol": "grpc",
        },
    }
    file = path / "cupola.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def stored_trace(url: str, response_id: str, count: int) -> dict[str, Any]:
    """The response's trace from the API once ``count`` spans are stored (they are written
    in batches a moment after they end)."""
    deadline = time.monotonic() + 15
    while True:
        r = httpx.get(f"{url}/api/projects/default/openai/v1/responses/{response_id}/trace")
        if r.status_code == 200 and len(r.json()["spans"]) >= count:
            trace: dict[str, Any] = r.json()
            return trace
        assert time.monotonic() < deadline, r.text
        time.sleep(0.1)


def check_tree(spans: list[dict[str, Any]], response_id: str) -> None:
    """invoke_agent (a child of the caller's span) over chat, execute_tool, chat."""
    run, *children = spans
    assert run["name"] == "invoke_agent"
    assert run["parent_span_id"] == CALLER_SPAN
    assert [s["name"] for s in children] == [
        "chat header-bot",
        "execute_tool accounts_echoHeaders",
        "chat header-bot",
    ]
    assert all(s["parent_span_id"] == run["span_id"] for s in children)
    assert all(s["trace_id"] == CALLER_TRACE for s in spans)
    starts = [s["start_time_unix_nano"] for s in children]
    assert starts == sorted(starts)
    a = run["attributes"]
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.response.id"] == response_id
    assert a["gen_ai.request.model"] == "header-bot"
    assert a["gen_ai.provider.name"] == "cupola.scripted"
    assert a["cupola.run.status"] == "completed" and run["outcome"] == "completed"
    first, tool, second = (s["attributes"] for s in children)
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert second["gen_ai.response.finish_reasons"] == ["stop"]
    assert first["gen_ai.usage.input_tokens"] > 0 and second["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == (
        first["gen_ai.usage.output_tokens"] + second["gen_ai.usage.output_tokens"]
    )
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "accounts_echoHeaders"
    assert tool["gen_ai.tool.call.id"].startswith("call_")
    assert tool["gen_ai.tool.type"] == "extension"
    assert tool["cupola.tool.outcome"] == "completed"
    assert children[1]["kind"] == "internal" and children[0]["kind"] == "client"
    # content was captured (the setting is on), with the secret redacted
    assert "***" in a["gen_ai.input.messages"]
    assert "authorization" in tool["gen_ai.tool.call.result"]


def check_exported(received: Received, stored: list[dict[str, Any]]) -> None:
    exported = received.trace(CALLER_TRACE, len(stored))
    assert {s.span_id.hex() for s in exported} == {s["span_id"] for s in stored}
    by_id = {s.span_id.hex(): s for s in exported}
    for span in stored:
        sent = by_id[span["span_id"]]
        assert sent.name == span["name"]
        assert sent.start_time_unix_nano == span["start_time_unix_nano"]
        assert attributes(sent)["gen_ai.operation.name"] == span["operation"]
    run = by_id[stored[0]["span_id"]]
    assert run.parent_span_id.hex() == CALLER_SPAN
    assert received.resources[0]["service.name"] == "cupola"


def test_a_tool_run_is_one_trace_stored_and_exported(
    database_url: str, echo_api: str, tmp_path: Path
) -> None:
    with grpc_receiver() as (otlp, received):
        config = write_config(tmp_path, database_url, otlp)
        with serve_process(config, output=tmp_path / "serve.log") as (url, _proc):
            project = f"{url}/api/projects/default"
            connection = "echo-" + secrets.token_hex(3)
            put = httpx.put(
                f"{project}/connections/{connection}",
                json={
                    "type": "ApiKey",
                    "target": echo_api,
                    "credentials": {"type": "ApiKey", "key": SECRET},
                },
            )
            assert put.status_code == 200, put.text
            r = httpx.post(
                f"{project}/openai/v1/responses",
                json={
                    "model": "header-bot",
                    "input": f"Show me my headers (my key is {SECRET})",
                    "tools": [openapi_tool(echo_api, connection)],
                },
                headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "completed", body
            assert r.headers["x-cupola-trace-id"] == CALLER_TRACE
            response_id = body["id"]

            trace = stored_trace(url, response_id, 4)
            assert trace["id"] == CALLER_TRACE
            check_tree(trace["spans"], response_id)
            listed = httpx.get(f"{project}/traces", params={"response_id": response_id}).json()
            assert [t["id"] for t in listed["data"]] == [CALLER_TRACE]
            assert listed["data"][0]["status"] == "completed"
            by_id = httpx.get(f"{project}/traces/{CALLER_TRACE}").json()
            assert by_id == trace
            check_exported(received, trace["spans"])

            seen = [r.text, httpx.get(f"{project}/traces").text, str(trace)]
        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as conn:
                seen += [str(tuple(row)) for row in conn.execute(sa.text("SELECT * FROM spans"))]
        finally:
            engine.dispose()
        exported = b"".join(received.bodies)
    assert exported and len(seen) > 4
    assert SECRET.encode() not in exported
    assert all(SECRET not in text for text in seen[1:])
    assert "sk-tele-" not in (tmp_path / "serve.log").read_text()
