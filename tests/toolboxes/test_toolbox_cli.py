"""``cupola toolbox`` against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cupola.cli.main import cli
from live_server import LiveServer, free_port

TOOLBOX = """\
name: {name}
description: Support tools
metadata: {{team: support}}
tools:
  - type: mcp
    server_label: github
    server_url: https://example.com/mcp
  - type: openapi
    openapi: {{name: weather, spec_file: weather.json, auth: {{type: anonymous}}}}
"""
WEATHER_SPEC = {
    "openapi": "3.0.0",
    "info": {"title": "weather", "version": "1"},
    "servers": [{"url": "http://127.0.0.1:9/api"}],
    "paths": {
        "/weather/{city}": {
            "get": {
                "operationId": "getWeather",
                "parameters": [
                    {"name": "city", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}
NOTES = """\
  - type: mcp
    server_label: notes
    command: [python, -m, notes]
"""


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def one_line_error(result: Result) -> str:
    """The error a failed command printed: exactly one line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.output.splitlines()[1:]]


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """The CLI pointed at the test server, with a config file of its own."""
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    return {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": server.url}


@pytest.fixture
def toolbox_file(tmp_path: Path, unique: str) -> tuple[Path, str]:
    name = f"support-{unique}"
    folder = tmp_path / "toolbox"
    folder.mkdir()
    (folder / "weather.json").write_text(json.dumps(WEATHER_SPEC))
    path = folder / "toolbox.yaml"
    path.write_text(TOOLBOX.format(name=name))
    return path, name


def test_apply_list_show_versions_promote(
    server: LiveServer, env: dict[str, str], toolbox_file: tuple[Path, str]
) -> None:
    path, name = toolbox_file
    first = invoke(env, "toolbox", "apply", "-f", str(path))
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"toolbox {name} version 1 (created, default)"
    again = invoke(env, "toolbox", "apply", "-f", str(path))
    assert again.output.strip() == f"toolbox {name} version 1 (unchanged, default)"

    path.write_text(path.read_text() + NOTES)
    second = invoke(env, "toolbox", "apply", "-f", str(path))
    assert second.output.strip() == f"toolbox {name} version 2 (created, default is version 1)"

    listed = rows(invoke(env, "toolbox", "list"))
    assert next(r for r in listed if r[0] == name)[1:3] == ["1", "2"]

    shown = invoke(env, "toolbox", "show", name)
    assert shown.exit_code == 0, shown.output
    assert "version:     1 (default)" in shown.output
    assert "tool:        github (mcp) https://example.com/mcp" in shown.output
    assert "tool:        weather (openapi)" in shown.output
    assert "notes" not in shown.output
    assert f"endpoint:    {server.url}/api/projects/default/toolboxes/{name}/mcp\n" in shown.output
    pinned = invoke(env, "toolbox", "show", name, "--version", "2")
    assert "version:     2\n" in pinned.output
    assert "tool:        notes (mcp) python -m notes" in pinned.output
    assert f"/toolboxes/{name}/mcp?version=2" in pinned.output
    body = json.loads(invoke(env, "toolbox", "show", name, "--version", "2", "--json").output)
    assert body["version"] == "2" and body["metadata"] == {"team": "support"}
    assert body["tools"][1]["openapi"]["spec"] == WEATHER_SPEC

    newest, oldest = rows(invoke(env, "toolbox", "versions", name))
    # VERSION LABELS TOOLS CREATED DESCRIPTION
    assert newest[:3] == ["2", "-", "3"] and newest[-1] == "tools"
    assert oldest[:4] == ["1", "*", "default", "2"]  # * marks the default

    promoted = invoke(env, "toolbox", "promote", name, "2")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.strip() == f"toolbox {name} default version 2 (was 1)"
    assert invoke(env, "toolbox", "promote", name, "2").output.strip().endswith("(unchanged)")
    assert "version:     2 (default)" in invoke(env, "toolbox", "show", name).output
    assert "not found" in one_line_error(invoke(env, "toolbox", "promote", name, "9"))


def test_apply_with_promote(env: dict[str, str], toolbox_file: tuple[Path, str]) -> None:
    path, name = toolbox_file
    invoke(env, "toolbox", "apply", "-f", str(path))
    path.write_text(path.read_text() + NOTES)
    result = invoke(env, "toolbox", "apply", "--promote", "-f", str(path))
    assert result.output.strip() == (
        f"toolbox {name} version 2 (created, now the default, was version 1)"
    )
    assert json.loads(invoke(env, "toolbox", "show", name, "--json").output)["version"] == "2"


def test_delete(env: dict[str, str], toolbox_file: tuple[Path, str]) -> None:
    path, name = toolbox_file
    invoke(env, "toolbox", "apply", "-f", str(path))
    path.write_text(path.read_text() + NOTES)
    invoke(env, "toolbox", "apply", "-f", str(path))

    refused = one_line_error(invoke(env, "toolbox", "delete", name, "--version", "1", "--yes"))
    assert "is the default version" in refused
    assert invoke(env, "toolbox", "delete", name, "--version", "2", input="n\n").exit_code == 1
    deleted = invoke(env, "toolbox", "delete", name, "--version", "2", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output.strip() == f"deleted toolbox {name} version 2"
    assert [r[0] for r in rows(invoke(env, "toolbox", "versions", name))] == ["1"]

    confirmed = invoke(env, "toolbox", "delete", name, input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert f"deleted toolbox {name}" in confirmed.output
    assert "not found" in one_line_error(invoke(env, "toolbox", "show", name))
    assert name not in invoke(env, "toolbox", "list").output
    assert "not found" in one_line_error(invoke(env, "toolbox", "delete", name, "--yes"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: [oops\n", "not valid YAML"),
        ("name: tb\n", "'tools' must be a list"),
        ("name: tb\ntools: [{type: function, name: f}]\n", "cannot be in a toolbox"),
        (
            "name: tb\ntools: [{type: mcp, server_label: x, server_url: 'http://h/mcp', "
            "command: [srv]}]\n",
            "not both",
        ),
    ],
)
def test_apply_malformed_file(
    env: dict[str, str], tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert expected in one_line_error(invoke(env, "toolbox", "apply", "-f", str(path)))


def test_missing_file_and_unreachable_server(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert "no such file" in one_line_error(invoke(env, "toolbox", "apply", "-f", str(missing)))
    url = f"http://127.0.0.1:{free_port()}"
    error = one_line_error(invoke({**env, "CUPOLA_ENDPOINT": url}, "toolbox", "list"))
    assert error == f"error: cannot reach cupola at {url} (is `cupola serve` running?)"
    error = one_line_error(
        invoke({**env, "CUPOLA_ENDPOINT": url}, "toolbox", "delete", "x", "--yes")
    )
    assert "cannot reach cupola" in error
