"""Labels end to end: ``cupola agent|toolbox label``, the labels REST, and references that
name a label (``agent_reference.version``, ``model="name:label"``, a toolbox tool's
``version``, the toolbox endpoint's ``?version=``) against a live server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner, Result
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from cupola.cli.main import cli
from live_server import LiveServer

SUITE = {
    "type": "mcp",
    "server_label": "suite",
    "command": [
        sys.executable,
        str(Path(__file__).parents[1] / "tools" / "mcp" / "conformance_server.py"),
    ],
    "require_approval": "never",
}


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    return {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": server.url}


@pytest.fixture
def http(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.project_url, params={"api-version": "v1"}, timeout=30)


def make_agent(http: httpx.Client, name: str, versions: int) -> None:
    for i in range(1, versions + 1):
        body = {"definition": {"model": "echo", "instructions": f"You are version {i}."}}
        r = http.post(f"/agents/{name}/versions", json=body)
        assert r.status_code == 200, r.text


def test_agent_labels_with_the_cli(env: dict[str, str], http: httpx.Client, unique: str) -> None:
    name = f"lab-{unique}"
    make_agent(http, name, 3)
    first = invoke(env, "agent", "label", name, "1", "prod")
    assert first.exit_code == 0 and "label prod -> version 1 (new label)" in first.output
    moved = invoke(env, "agent", "label", name, "2", "prod")
    assert "label prod -> version 2 (was version 1)" in moved.output
    same = invoke(env, "agent", "label", name, "2", "prod")
    assert "(unchanged)" in same.output

    listed = invoke(env, "agent", "labels", name)
    lines = [line.split() for line in listed.output.splitlines()]
    assert ["prod", "2"] == lines[1][:2] and ["latest", "3"] == lines[2][:2]
    versions = invoke(env, "agent", "versions", name)
    row = next(line for line in versions.output.splitlines() if line.startswith("2 "))
    assert row.split()[:2] == ["2", "prod"]
    shown = invoke(env, "agent", "show", name, "--version", "prod")
    assert "version:     2" in shown.output and "You are version 2." in shown.output

    history = invoke(env, "agent", "labels", name, "--history")
    rows = [line.split()[-3:] for line in history.output.splitlines()[1:]]
    assert rows == [["prod", "1", "2"], ["prod", "-", "1"]]
    removed = invoke(env, "agent", "unlabel", name, "prod")
    assert "label prod removed (was version 2)" in removed.output
    assert "(removed)" in invoke(env, "agent", "labels", name, "--history").output

    assert "'latest' always means" in one_line_error(
        invoke(env, "agent", "label", name, "1", "latest")
    )
    assert "not found" in one_line_error(invoke(env, "agent", "label", name, "9", "prod"))
    assert "no label 'prod'" in one_line_error(invoke(env, "agent", "unlabel", name, "prod"))


def test_a_labelled_version_cannot_be_deleted(
    env: dict[str, str], http: httpx.Client, unique: str
) -> None:
    name = f"lab-{unique}"
    make_agent(http, name, 2)
    assert invoke(env, "agent", "label", name, "1", "prod").exit_code == 0
    error = one_line_error(invoke(env, "agent", "delete", name, "--version", "1", "--yes"))
    assert "'prod'" in error and "move or remove" in error
    r = http.delete(f"/agents/{name}/versions/1")
    assert r.status_code == 400 and r.json()["error"]["code"] == "labelled_version"


def test_references_name_a_label(server: LiveServer, http: httpx.Client, unique: str) -> None:
    name = f"lab-{unique}"
    make_agent(http, name, 3)
    r = http.put(f"/agents/{name}/labels/prod", json={"version": "2"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "object": "agent.label",
        "id": f"{name}@prod",
        "name": name,
        "label": "prod",
        "version": "2",
        "updated_at": r.json()["updated_at"],
    }
    sdk = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    ref = {"type": "agent_reference", "name": name, "version": "prod"}
    response = sdk.responses.create(input="hi", extra_body={"agent_reference": ref})
    assert response.status == "completed"
    assert "You are version 2." in response.output_text
    assert response.model_extra and response.model_extra["agent_reference"]["version"] == "2"
    latest = {**ref, "version": "latest"}
    text = sdk.responses.create(input="hi", extra_body={"agent_reference": latest}).output_text
    assert "You are version 3." in text
    chat = sdk.chat.completions.create(
        model=f"{name}:prod", messages=[{"role": "user", "content": "hi"}]
    )
    assert "You are version 2." in (chat.choices[0].message.content or "")
    assert http.get(f"/agents/{name}/versions/prod").json()["version"] == "2"

    with pytest.raises(openai.NotFoundError) as info:
        sdk.responses.create(
            input="hi", extra_body={"agent_reference": {**ref, "version": "staging"}}
        )
    assert "no label 'staging'" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(input="hi", extra_body={"agent_reference": {**ref, "version": "a b"}})


def test_labels_rest_refusals(http: httpx.Client, unique: str) -> None:
    name = f"lab-{unique}"
    make_agent(http, name, 1)
    cases: list[tuple[str, str, Any, int]] = [
        ("PUT", f"/agents/{name}/labels/latest", {"version": "1"}, 400),
        ("PUT", f"/agents/{name}/labels/prod", {"version": "x"}, 400),
        ("PUT", f"/agents/{name}/labels/prod", {"version": "99999999999"}, 400),
        ("PUT", f"/agents/{name}/labels/prod", {"version": True}, 400),
        ("PUT", f"/agents/{name}/labels/prod", {"version": "1", "extra": 1}, 400),
        ("PUT", f"/agents/{name}/labels/prod", {"version": "7"}, 404),
        ("PUT", f"/agents/nope-{unique}/labels/prod", {"version": "1"}, 404),
        ("GET", f"/agents/{name}/labels/prod", None, 404),
        ("DELETE", f"/agents/{name}/labels/prod", None, 404),
        ("GET", f"/agents/nope-{unique}/labels", None, 404),
    ]
    for method, path, body, status in cases:
        r = http.request(method, path, json=body)
        assert r.status_code == status, (method, path, body, r.text)
        assert r.json()["error"]["message"]
    for params in ({"after": "x"}, {"label": "latest"}, {"limit": "0"}):
        r = http.get(f"/agents/{name}/label_history", params={"api-version": "v1", **params})
        assert r.status_code == 400, (params, r.text)


def list_tools(url: str) -> list[str]:
    async def go() -> list[str]:
        async with (
            streamable_http_client(url) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return sorted(t.name for t in (await session.list_tools()).tools)

    return asyncio.run(go())


def test_toolbox_labels(
    env: dict[str, str], server: LiveServer, http: httpx.Client, unique: str
) -> None:
    name = f"kit-{unique}"
    for tools in ([SUITE], [SUITE, {**SUITE, "server_label": "other"}]):
        assert http.post(f"/toolboxes/{name}/versions", json={"tools": tools}).status_code == 200
    assert (
        "label canary -> version 2 (new label)"
        in invoke(env, "toolbox", "label", name, "2", "canary").output
    )
    toolbox = http.get(f"/toolboxes/{name}").json()
    assert toolbox["default_version"] == "1"
    assert toolbox["labels"] == {"default": "1", "canary": "2"}

    url = f"{server.project_url}/toolboxes/{name}/mcp"
    default, canary = list_tools(url), list_tools(f"{url}?version=canary")
    assert "test_simple_text" in default and "other__test_simple_text" in canary
    assert list_tools(f"{url}?version=latest") == canary

    # An agent can follow a toolbox label; promotion (the default label) keeps working.
    agent = f"agent-{unique}"
    tool = {"type": "toolbox", "name": name, "version": "canary"}
    body = {"definition": {"model": "echo", "tools": [tool]}}
    assert http.post(f"/agents/{agent}/versions", json=body).status_code == 200
    promoted = invoke(env, "toolbox", "promote", name, "2")
    assert "default version 2 (was 1)" in promoted.output
    history = invoke(env, "toolbox", "labels", name, "--history", "--label", "default")
    rows = [line.split()[-3:] for line in history.output.splitlines()[1:]]
    assert rows == [["default", "1", "2"], ["default", "-", "1"]]
    versions = invoke(env, "toolbox", "versions", name)
    row = next(line for line in versions.output.splitlines() if line.startswith("2 *"))
    assert "canary, default" in row
    error = one_line_error(invoke(env, "toolbox", "unlabel", name, "default"))
    assert "always has a 'default' label" in error
