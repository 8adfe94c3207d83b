"""One rule, two doors: what the API refuses, ``cupola serve --apply`` refuses too (they call
the same service), with a 4xx naming the field over HTTP and one line naming the file and
the field from the CLI; what --apply stores, the API serves."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml

from cupola.cli.serve import apply_files
from cupola.server.app import build_services
from cupola.server.services import Services
from live_server import LiveServer, make_settings

STDIO = {"type": "mcp", "server_label": "notes", "command": [sys.executable, "-c", "pass"]}


@pytest.fixture
def services(server: LiveServer) -> Iterator[Services]:
    """Services of their own on the live server's database (as ``cupola serve`` builds
    them before it serves)."""
    s = build_services(make_settings(server.settings.database_url))
    yield s
    asyncio.run(s.store.close())


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


CASES = [
    pytest.param(
        {"model": "echo", "tools": [{"type": "toolbox", "name": "nope-{u}"}]},
        404,
        "definition.tools[0].name",
        "toolbox 'nope-{u}' not found",
        id="missing-toolbox",
    ),
    pytest.param(
        {"model": "no-such-deployment"},
        404,
        "definition.model",
        "deployment 'no-such-deployment' not found",
        id="missing-deployment",
    ),
    pytest.param(
        {"model": "echo", "tools": [{"type": "file_search", "vector_store_ids": ["vs_nope"]}]},
        404,
        "definition.tools[0]",
        "vs_nope",
        id="missing-vector-store",
    ),
    pytest.param(
        {"model": "echo", "tool_choice": "required"},
        400,
        "definition.tool_choice",
        "tool_choice",
        id="tool-choice-without-tools",
    ),
]


@pytest.mark.parametrize(("definition", "status", "param", "message"), CASES)
def test_what_the_api_refuses_apply_refuses(
    server: LiveServer,
    services: Services,
    tmp_path: Path,
    unique: str,
    definition: dict[str, Any],
    status: int,
    param: str,
    message: str,
) -> None:
    definition = yaml.safe_load(yaml.safe_dump(definition).replace("{u}", unique))
    message = message.replace("{u}", unique)
    name = f"refused-{unique}"
    r = httpx.post(f"{server.project_url}/agents/{name}/versions", json={"definition": definition})
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param and message in r.json()["error"]["message"]

    agent_file = write(tmp_path / "agent.yaml", {"name": name, "definition": definition})
    with pytest.raises(click.ClickException) as caught:
        apply_files(services, (agent_file,))
    line = caught.value.message
    assert "\n" not in line and str(agent_file) in line and message in line, line
    assert f"({param})" in line, line
    assert httpx.get(f"{server.project_url}/agents/{name}").status_code == 404


def test_serve_apply_stops_with_one_line_for_a_missing_toolbox(
    server: LiveServer, tmp_path: Path, unique: str
) -> None:
    """The real command: nothing served, nothing stored, one line on stderr."""
    name = f"cli-refused-{unique}"
    agent_file = write(
        tmp_path / "agent.yaml",
        {
            "name": name,
            "definition": {"model": "echo", "tools": [{"type": "toolbox", "name": f"no-{unique}"}]},
        },
    )
    config = write(
        tmp_path / "cupola.yaml",
        {
            "data_dir": str(tmp_path / "data"),
            "database_url": server.settings.database_url,
            "deployments": [{"name": "echo", "provider": "scripted", "mode": "echo"}],
        },
    )
    run = subprocess.run(
        [sys.executable, "-m", "cupola.cli", "serve", "--config", str(config), "--port", "9"]
        + ["--log-level", "warning", "--apply", str(agent_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run.stderr
    assert f"toolbox 'no-{unique}' not found" in errors[0] and str(agent_file) in errors[0]
    assert "definition.tools[0].name" in errors[0]
    assert "cupola serving" not in run.stdout
    assert httpx.get(f"{server.project_url}/agents/{name}").status_code == 404


def test_apply_is_an_admins_and_the_api_serves_what_it_stored(
    server: LiveServer, services: Services, tmp_path: Path, unique: str
) -> None:
    """Applied files may start processes (an admin wrote them); an agent may name a toolbox
    applied with it; applying again changes nothing."""
    box, agent = f"notes-{unique}", f"notes-agent-{unique}"
    files = (
        write(
            tmp_path / "agent.yaml",
            {
                "name": agent,
                "definition": {"model": "echo", "tools": [{"type": "toolbox", "name": box}]},
            },
        ),
        write(tmp_path / "box.yaml", {"name": box, "tools": [STDIO]}),
    )
    assert apply_files(services, files) == [
        f"toolbox {box} version 1 (created)",
        f"agent {agent} version 1 (created)",
    ]
    assert apply_files(services, files) == [
        f"toolbox {box} version 1 (unchanged)",
        f"agent {agent} version 1 (unchanged)",
    ]
    got = httpx.get(f"{server.project_url}/toolboxes/{box}/versions/1").json()
    assert got["tools"][0]["command"] == STDIO["command"]
    assert httpx.get(f"{server.project_url}/agents/{agent}").json()["versions"]["latest"][
        "definition"
    ]["tools"] == [{"type": "toolbox", "name": box}]
