"""No process from a request: an ``mcp`` tool with ``command`` in a request is refused however
it arrives, while stdio servers defined on the server (a toolbox) keep working."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from live_server import LiveServer, serve_process

TRAVEL_MCP = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge" / "mcp_server.py"


def marker_tool(marker: Path) -> dict[str, Any]:
    """An mcp tool whose command would create ``marker`` the moment it started."""
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "type": "mcp",
        "server_label": "marker",
        "command": [sys.executable, "-c", code],
        "require_approval": "never",
    }


def test_the_openai_sdk_cannot_start_a_process(server: LiveServer, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    sdk = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.responses.create(
                model="echo",
                input="hi",
                tools=[marker_tool(marker)],  # type: ignore[list-item]
                stream=stream,
            )
        body = caught.value.body
        assert isinstance(body, dict) and body["code"] == "command_not_allowed"
        assert body["param"] == "tools[0].command"
        assert "server_url" in body["message"]
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(
            model="echo",
            input="hi",
            tools=[marker_tool(marker)],  # type: ignore[list-item]
            background=True,
        )
    time.sleep(0.5)
    assert not marker.exists()


def test_chat_completions_and_messages_cannot_start_a_process(
    server: LiveServer, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "hi"}],
            tools=[marker_tool(marker)],  # type: ignore[list-item]
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported_tool"
    r = httpx.post(
        f"{server.url}/anthropic/v1/messages",
        json={
            "model": "echo",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [marker_tool(marker)],
        },
    )
    assert r.status_code == 400, r.text
    time.sleep(0.5)
    assert not marker.exists()


def test_a_cross_origin_text_plain_post_cannot_start_a_process(
    server: LiveServer, tmp_path: Path
) -> None:
    """The exact attack: a web page's ``fetch`` with a string body (sent as text/plain, no
    preflight), with and without the browser's Origin."""
    marker = tmp_path / "pwned"
    body = orjson.dumps({"model": "echo", "input": "hi", "tools": [marker_tool(marker)]})
    url = f"{server.url}/v1/responses"
    page = {"Origin": "http://evil.example", "Content-Type": "text/plain;charset=UTF-8"}
    r = httpx.post(url, content=body, headers=page)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin_not_allowed"
    # the body alone, without the Origin header a browser adds: still not JSON
    for content_type in ({"Content-Type": "text/plain"}, {}):
        r = httpx.post(url, content=body, headers=content_type)
        assert r.status_code == 415, r.text
        assert r.json()["error"]["code"] == "unsupported_media_type"
    # and as JSON it is the request refusal
    r = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "command_not_allowed"
    time.sleep(0.5)
    assert not marker.exists()


def test_a_toolbox_defined_with_a_command_still_works(server: LiveServer, unique: str) -> None:
    """Defined on the server (no key needed on loopback: full rights), used by name."""
    tool = {
        "type": "mcp",
        "server_label": "travel",
        "command": [sys.executable, str(TRAVEL_MCP)],
        "require_approval": "never",
    }
    name = f"travel-{unique}"
    r = httpx.post(f"{server.project_url}/toolboxes/{name}/versions", json={"tools": [tool]})
    assert r.status_code == 200, r.text
    sdk = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    response = sdk.responses.create(
        model="weather-bot",
        input="What is the weather in Tokyo?",
        tools=[{"type": "toolbox", "name": name}],  # type: ignore[list-item]
    )
    assert [i.type for i in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert response.output_text == "It is sunny in Tokyo, twenty degrees."


def test_the_attack_fails_under_cupola_serve(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text(
        f"project: default\ndatabase_url: {database_url}\ndata_dir: {tmp_path / 'data'}\n"
        "deployments:\n  - name: echo\n    provider: scripted\n    mode: echo\n"
    )
    marker = tmp_path / "pwned"
    body = orjson.dumps({"model": "echo", "input": "hi", "tools": [marker_tool(marker)]})
    with serve_process(config) as (url, _proc):
        for path in ("/v1/responses", "/api/projects/default/openai/v1/responses"):
            r = httpx.post(
                url + path,
                content=body,
                headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
            )
            assert r.status_code == 403, r.text
            r = httpx.post(url + path, content=body, headers={"Content-Type": "text/plain"})
            assert r.status_code == 415, r.text
            r = httpx.post(url + path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, r.text
        # DNS rebinding: the page's own origin, the server's address, a foreign Host
        r = httpx.post(
            f"{url}/v1/responses",
            content=body,
            headers={"Host": "evil.example", "Content-Type": "application/json"},
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"
        ok = httpx.post(f"{url}/v1/responses", json={"model": "echo", "input": "hi"})
        assert ok.status_code == 200 and ok.json()["status"] == "completed"
    assert not marker.exists()
