"""MCP servers declared in cupola.yaml (``mcp_servers``), used by name under ``cupola serve``:
started on first use, reused, stopped with the server; their command, environment and
secrets come from the file only, never from a request."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from live_server import make_settings, serve_process, start_server

DECLARED = Path(__file__).resolve().parent / "declared_server.py"
PROBE_SCRIPT = [
    {"match": '"pid"', "reply": "I am a process."},
    {"match": "my token is", "reply": "I will not say."},
    {"match": "(?i)^leak", "tool_calls": [{"name": "leak", "arguments": {}}]},
    {"match": "(?i)who", "tool_calls": [{"name": "whoami", "arguments": {}}]},
    {"reply": "Ask me who you are."},
]


def write_config(directory: Path, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "project": "default",
        "data_dir": "data",
        "deployments": [
            {"name": "probe", "provider": "scripted", "mode": "script", "script": PROBE_SCRIPT}
        ],
        "mcp_servers": {
            "local": {
                "command": "python",
                "args": [str(DECLARED)],
                "env": {"API_TOKEN": "${DECLARED_TOKEN}"},
                "cwd": "work",
                "allowed_tools": ["whoami", "leak"],
                "require_approval": "never",
                "description": "a test server",
            }
        },
    }
    data.update(extra)
    config = directory / "cupola.yaml"
    config.write_text(yaml.safe_dump(data))
    (directory / "work").mkdir(exist_ok=True)
    return config


def children(pid: int) -> set[int]:
    """The direct child processes of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out |= {int(p) for p in text}
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def types_of(response: Any) -> list[str]:
    return [item.type for item in response.output]


@pytest.fixture
def token() -> str:
    return f"tok-{secrets.token_hex(12)}"


@pytest.fixture
def served(tmp_path: Path, token: str) -> Iterator[tuple[str, int, Path]]:
    """``cupola serve`` with the declared server; yields (url, serve pid, log file)."""
    log = tmp_path / "serve.log"
    env = {"DECLARED_TOKEN": token, "DECLARED_INHERITED": "x"}
    with serve_process(write_config(tmp_path), env=env, output=log) as (url, proc):
        yield url, proc.pid, log


def test_a_request_uses_a_declared_stdio_server_by_name(
    served: tuple[str, int, Path], tmp_path: Path, token: str
) -> None:
    url, serve_pid, log = served
    assert children(serve_pid) == set()  # nothing starts before it is used
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
    tool: Any = {"type": "mcp", "server_label": "local"}
    first = sdk.responses.create(model="probe", input="who are you?", tools=[tool])
    assert first.status == "completed", first.error
    assert types_of(first) == ["mcp_list_tools", "mcp_call", "message"]
    listing, call, _ = first.output
    # the declaration's allowed_tools: "hidden" is never offered
    assert {t.name for t in listing.tools} == {"whoami", "leak"}  # type: ignore[union-attr]
    facts = json.loads(call.output)  # type: ignore[union-attr]
    assert facts["token_length"] == len(token)  # the env reached the process...
    assert facts["inherited"] == []  # ...and the server's own environment did not
    assert facts["cwd"] == str((tmp_path / "work").resolve())  # relative to cupola.yaml
    assert facts["pid"] in children(serve_pid)  # started by cupola serve, when used
    assert first.output_text == "I am a process."
    echoed = first.model_dump(mode="json", exclude_none=True)
    assert echoed["tools"] == [{"type": "mcp", "server_label": "local"}]
    assert token not in json.dumps(echoed) and "declared_server" not in json.dumps(echoed)

    second = sdk.responses.create(model="probe", input="who are you now?", tools=[tool])
    again = json.loads(second.output[-2].output)  # type: ignore[union-attr]
    assert again["pid"] == facts["pid"]  # the session is reused

    leaked = sdk.responses.create(model="probe", input="leak it", tools=[tool])
    text = json.dumps(leaked.model_dump(mode="json"))
    assert leaked.output[-2].output == "my token is ***"  # type: ignore[union-attr]
    assert token not in text and token not in log.read_text()

    # an agent names it too (created with no key on loopback), narrowing its tools
    base = f"{url}/api/projects/default"
    agent = {"model": "probe", "tools": [{**tool, "allowed_tools": ["whoami"]}]}
    r = httpx.post(f"{base}/agents/prober/versions", json={"definition": agent})
    assert r.status_code == 200, r.text
    assert token not in r.text and "command" not in r.text
    by_agent = sdk.responses.create(
        input="who are you?", extra_body={"agent_reference": {"name": "prober"}}
    )
    assert types_of(by_agent) == ["mcp_list_tools", "mcp_call", "message"]
    assert {t.name for t in by_agent.output[0].tools} == {"whoami"}  # type: ignore[union-attr]
    assert json.loads(by_agent.output[1].output)["pid"] == facts["pid"]  # type: ignore[union-attr]
    chat = sdk.chat.completions.create(
        model="prober", messages=[{"role": "user", "content": "who are you?"}]
    )
    assert chat.choices[0].message.content == "I am a process."

    # a request cannot widen it: "hidden" stays out, and asking for approval is honoured
    narrow: Any = {**tool, "allowed_tools": ["whoami", "hidden"], "require_approval": "always"}
    asked = sdk.responses.create(model="probe", input="who are you?", tools=[narrow])
    assert {t.name for t in asked.output[0].tools} == {"whoami"}  # type: ignore[union-attr]
    assert types_of(asked) == ["mcp_list_tools", "mcp_approval_request"]


def test_the_declared_server_stops_with_cupola_serve(tmp_path: Path, token: str) -> None:
    env = {"DECLARED_TOKEN": token}
    with serve_process(write_config(tmp_path), env=env) as (url, _proc):
        response = httpx.post(
            f"{url}/v1/responses",
            json={
                "model": "probe",
                "input": "who?",
                "tools": [{"type": "mcp", "server_label": "local"}],
            },
            timeout=60,
        ).json()
        pid = json.loads(response["output"][1]["output"])["pid"]
        assert alive(pid)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_requests_cannot_change_or_invent_a_declared_server(
    served: tuple[str, int, Path], tmp_path: Path
) -> None:
    url, serve_pid, _log = served

    def post(tool: dict[str, Any]) -> httpx.Response:
        body = {
            "model": "probe",
            "input": "who?",
            "tools": [{"type": "function", "name": "f"}, tool],
        }
        return httpx.post(f"{url}/v1/responses", json=body, timeout=30)

    unknown = post({"type": "mcp", "server_label": "nope"})
    assert unknown.status_code == 404, unknown.text
    error = unknown.json()["error"]
    assert error["code"] == "mcp_server_not_found"
    assert error["param"] == "tools[1].server_label"
    assert "'nope'" in error["message"] and "local" in error["message"]

    marker = tmp_path / "pwned"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    as_command = post({"type": "mcp", "server_label": "local", "command": command})
    assert as_command.status_code == 400
    assert as_command.json()["error"]["code"] == "command_not_allowed"
    for key, value in (("env", {"API_TOKEN": "mine"}), ("cwd", "/"), ("headers", {"a": "b"})):
        changed = post({"type": "mcp", "server_label": "local", key: value})
        assert changed.status_code == 400, changed.text
        assert changed.json()["error"]["param"] == f"tools[1].{key}"
        assert changed.json()["error"]["code"] == "declared_mcp_server"
    agent = {"model": "probe", "tools": [{"type": "mcp", "server_label": "nope"}]}
    r = httpx.post(f"{url}/api/projects/default/agents/ghost/versions", json={"definition": agent})
    assert r.status_code == 404 and r.json()["error"]["code"] == "mcp_server_not_found"
    assert r.json()["error"]["param"] == "definition.tools[0].server_label"
    time.sleep(0.3)
    assert not marker.exists() and children(serve_pid) == set()


def test_allow_commands_false_refuses_a_declared_stdio_server(
    database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    settings = make_settings(
        database_url,
        tools={"allow_commands": False},
        mcp_servers={"local": {"command": command, "cwd": str(tmp_path)}},
    )
    live = start_server(settings)
    try:
        body = {"model": "echo", "input": "hi", "tools": [{"type": "mcp", "server_label": "local"}]}
        r = httpx.post(f"{live.url}/v1/responses", json=body, timeout=30)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "command_not_allowed"
        assert error["param"] == "tools[0].server_label"
        assert "allow_commands" in error["message"]
        time.sleep(0.3)
        assert not marker.exists()
    finally:
        live.stop()


def test_a_toolbox_names_a_declared_server(database_url: str, tmp_path: Path) -> None:
    """A toolbox holds the reference: responses using the toolbox, and its own MCP endpoint,
    reach the declared server; a version naming an undeclared one is refused (404), and one
    whose declaration went away fails when used (404)."""
    from test_mcp_agents import mcp_session_call

    from cupola.settings import DeploymentConfig
    from live_server import test_deployments

    probe = DeploymentConfig.model_validate(
        {"name": "probe", "provider": "scripted", "mode": "script", "script": PROBE_SCRIPT}
    )
    settings = make_settings(
        database_url,
        deployments=[*test_deployments(), probe],
        mcp_servers={
            "local": {
                "command": [sys.executable, str(DECLARED)],
                "cwd": str(tmp_path),
                "require_approval": "never",
                "allowed_tools": ["whoami"],
            },
            "gone": {"url": "http://127.0.0.1:9/mcp"},
        },
    )
    live = start_server(settings)
    try:
        base = f"{live.project_url}/toolboxes"
        entry = {"type": "mcp", "server_label": "local"}
        r = httpx.post(f"{base}/declared/versions", json={"tools": [entry]})
        assert r.status_code == 200, r.text
        assert r.json()["tools"] == [entry]
        body = {
            "model": "probe",
            "input": "who?",
            "tools": [{"type": "toolbox", "name": "declared"}],
        }
        out = httpx.post(f"{live.url}/v1/responses", json=body, timeout=60).json()
        assert [i["type"] for i in out["output"]] == ["mcp_list_tools", "mcp_call", "message"]
        assert json.loads(out["output"][1]["output"])["cwd"] == str(tmp_path)
        assert mcp_session_call(f"{base}/declared/mcp") == ["whoami"]

        ghost = {"type": "mcp", "server_label": "nope"}
        r = httpx.post(f"{base}/ghost/versions", json={"tools": [ghost]})
        assert r.status_code == 404, r.text  # refused when the version is created
        assert r.json()["error"]["param"] == "tools[0].server_label"
        # a declaration removed from cupola.yaml after the toolbox was made (a restart)
        r = httpx.post(
            f"{base}/ghost/versions", json={"tools": [{**ghost, "server_label": "gone"}]}
        )
        assert r.status_code == 200, r.text
        del live.settings.mcp_servers["gone"]
        body["tools"] = [{"type": "toolbox", "name": "ghost"}]
        r = httpx.post(f"{live.url}/v1/responses", json=body, timeout=30)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "mcp_server_not_found"
        assert "toolbox 'ghost'" in r.json()["error"]["message"]
    finally:
        live.stop()
