"""OpenAPI tools end to end: a live cupola calls a real HTTP API on loopback with a stored
connection's key, refuses a host the project does not allow, and the key shows up in no API
response, stored row or log line."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import openai
import openapi_fake_api
import pytest
import sqlalchemy as sa
from openapi_fake_api import API_KEY, FakeApi, weather_spec

from live_server import LiveServer

fake_api = openapi_fake_api.fake_api


def accounts_tool(spec: dict[str, Any], connection: str) -> dict[str, Any]:
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


def test_openapi_tool_uses_the_connection_key(
    server: LiveServer, fake_api: FakeApi, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = f"accounts-{unique}"
    put = httpx.put(
        f"{server.project_url}/connections/{connection}",
        json={
            "type": "ApiKey",
            "target": fake_api.base_url,
            "credentials": {"type": "ApiKey", "key": API_KEY},
        },
    )
    assert put.status_code == 200, put.text
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    tool = accounts_tool(weather_spec(fake_api.base_url), connection)
    raw = client.responses.with_raw_response.create(
        model="api-bot", input="Who am I?", tools=[tool]
    )
    response = raw.parse()
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "openapi_call"  # type: ignore[comparison-overlap]
    assert response.output_text == "You are on the pro plan."
    assert fake_api.paths("/me")[-1].headers["authorization"] == f"Bearer {API_KEY}"

    seen = [put.text, raw.text]
    seen.append(httpx.get(f"{server.openai_url}/responses/{response.id}").text)
    seen.append(httpx.get(f"{server.project_url}/connections/{connection}").text)
    seen.append(httpx.get(f"{server.project_url}/connections").text)
    with server.services.store.engine.connect() as conn:
        for table in ("responses", "connections", "conversation_items"):
            seen += [str(tuple(row)) for row in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    seen += [record.getMessage() for record in caplog.records]
    assert all(API_KEY not in text for text in seen)


def test_a_host_the_project_does_not_allow_is_refused(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    tool = {
        "type": "openapi",
        "openapi": {
            "name": "accounts",
            "spec": weather_spec("https://api.example.com"),
            "auth": {"type": "anonymous"},
        },
    }
    response = client.responses.create(model="api-bot", input="Who am I?", tools=[tool])
    call = response.output[0]
    assert call.type == "openapi_call"  # type: ignore[comparison-overlap]
    error = call.model_dump()["error"]  # type: ignore[attr-defined]
    assert "api.example.com" in error and "allowed_hosts" in error
    assert response.output_text == "The call failed."
