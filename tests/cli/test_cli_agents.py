"""``cupola agent``, ``cupola deployments`` and ``cupola keys`` against a live server."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cupola.cli.main import cli
from live_server import LiveServer, free_port, make_settings, start_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge"


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


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """The CLI pointed at the test server, with a config file of its own."""
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    env = {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": server.url}
    # the example agent names the travel-tools toolbox, which must exist first
    toolbox = invoke(env, "toolbox", "apply", "-f", str(EXAMPLE / "toolbox.yaml"))
    assert toolbox.exit_code == 0, toolbox.output
    return env


@pytest.fixture
def agent_file(tmp_path: Path, unique: str) -> tuple[Path, str]:
    """A copy of the example agent under a unique name (the server is shared)."""
    folder = tmp_path / "agent"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    name = f"travel-concierge-{unique}"
    path = folder / "agent.yaml"
    text = path.read_text()
    assert "\nname: travel-concierge\n" in text
    path.write_text(text.replace("\nname: travel-concierge\n", f"\nname: {name}\n"))
    return path, name


def test_apply_list_show_versions(env: dict[str, str], agent_file: tuple[Path, str]) -> None:
    path, name = agent_file
    result = invoke(env, "agent", "apply", "-f", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"agent {name} version 1 (created)"

    listed = invoke(env, "agent", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith(name + " "))
    assert row.split()[1:3] == ["1", "local-small"]

    shown = invoke(env, "agent", "show", name)
    assert shown.exit_code == 0, shown.output
    assert "model:       local-small" in shown.output
    assert "tool:        travel-tools (toolbox)" in shown.output
    assert "Voice output rules" in shown.output  # instructions_file was inlined

    as_json = invoke(env, "agent", "show", name, "--json")
    body = json.loads(as_json.output)
    assert body["name"] == name and body["version"] == "1"
    assert body["definition"]["model"] == "local-small"
    assert body["definition"]["tools"] == [{"type": "toolbox", "name": "travel-tools"}]

    versions = invoke(env, "agent", "versions", name)
    assert versions.exit_code == 0, versions.output
    assert [line.split()[0] for line in versions.output.splitlines()[1:]] == ["1"]


def test_apply_twice_is_unchanged_and_an_edit_makes_version_2(
    env: dict[str, str], agent_file: tuple[Path, str]
) -> None:
    path, name = agent_file
    assert invoke(env, "agent", "apply", "-f", str(path)).output.strip().endswith("(created)")
    again = invoke(env, "agent", "apply", "-f", str(path))
    assert again.exit_code == 0, again.output
    assert again.output.strip() == f"agent {name} version 1 (unchanged)"

    prompt = path.parent / "prompts" / "system.txt"
    prompt.write_text(prompt.read_text() + "\nAlways greet the traveller by name.\n")
    edited = invoke(env, "agent", "apply", "-f", str(path))
    assert edited.output.strip() == f"agent {name} version 2 (created)"

    versions = invoke(env, "agent", "versions", name)
    assert [line.split()[0] for line in versions.output.splitlines()[1:]] == ["2", "1"]
    latest = json.loads(invoke(env, "agent", "show", name, "--json").output)
    assert latest["version"] == "2"
    assert "greet the traveller" in latest["definition"]["instructions"]
    first = json.loads(invoke(env, "agent", "show", name, "--version", "1", "--json").output)
    assert "greet the traveller" not in first["definition"]["instructions"]

    # Going back to the first content reuses version 1.
    prompt.write_text((EXAMPLE / "prompts" / "system.txt").read_text())
    reverted = invoke(env, "agent", "apply", "-f", str(path))
    assert reverted.output.strip() == f"agent {name} version 1 (unchanged)"


def test_delete_version_then_agent(env: dict[str, str], agent_file: tuple[Path, str]) -> None:
    path, name = agent_file
    invoke(env, "agent", "apply", "-f", str(path))
    prompt = path.parent / "prompts" / "system.txt"
    prompt.write_text(prompt.read_text() + "\nBe brief.\n")
    invoke(env, "agent", "apply", "-f", str(path))

    refused = invoke(env, "agent", "delete", name, "--version", "1", input="n\n")
    assert refused.exit_code == 1
    assert invoke(env, "agent", "show", name, "--version", "1").exit_code == 0

    deleted = invoke(env, "agent", "delete", name, "--version", "1", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output.strip() == f"deleted agent {name} version 1"
    gone = one_line_error(invoke(env, "agent", "show", name, "--version", "1"))
    assert "not found" in gone
    versions = invoke(env, "agent", "versions", name)
    assert [line.split()[0] for line in versions.output.splitlines()[1:]] == ["2"]

    confirmed = invoke(env, "agent", "delete", name, input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert f"deleted agent {name}" in confirmed.output
    assert "not found" in one_line_error(invoke(env, "agent", "show", name))
    assert name not in invoke(env, "agent", "list").output
    assert "not found" in one_line_error(invoke(env, "agent", "delete", name, "--yes"))


def test_apply_the_example_file(env: dict[str, str]) -> None:
    first = invoke(env, "agent", "apply", "-f", str(EXAMPLE / "agent.yaml"))
    assert first.exit_code == 0, first.output
    assert re.fullmatch(
        r"agent travel-concierge version \d+ \((created|unchanged)\)", first.output.strip()
    )
    second = invoke(env, "agent", "apply", "-f", str(EXAMPLE / "agent.yaml"))
    assert second.output.strip().endswith("(unchanged)")
    assert second.output.split()[3] == first.output.split()[3]


def test_an_agent_naming_a_missing_toolbox_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "name: lost\ndefinition:\n  kind: prompt\n  model: echo\n"
        "  tools:\n    - type: toolbox\n      name: no-such-toolbox\n"
    )
    assert "toolbox 'no-such-toolbox' not found" in one_line_error(
        invoke(env, "agent", "apply", "-f", str(path))
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: [oops\ndefinition: {}\n", "not valid YAML"),
        ("name: broken\n", "'definition' must be a mapping"),
        ("- just\n- a list\n", "holds a mapping"),
        ("name: x\ndefinition: {model: no-such-deployment}\n", "no-such-deployment"),
        ("name: x\ndefinition: {model: echo, tools: [{type: nope}]}\n", "not supported"),
    ],
)
def test_apply_malformed_file(
    env: dict[str, str], tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert expected in one_line_error(invoke(env, "agent", "apply", "-f", str(path)))


def test_apply_missing_file(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert "no such file" in one_line_error(invoke(env, "agent", "apply", "-f", str(missing)))


def test_unreachable_server(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    error = one_line_error(invoke({**env, "CUPOLA_ENDPOINT": url}, "agent", "list"))
    assert error == f"error: cannot reach cupola at {url} (is `cupola serve` running?)"


def test_endpoint_option_overrides_the_environment(server: LiveServer, env: dict[str, str]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = invoke(
        {**env, "CUPOLA_ENDPOINT": nowhere}, "deployments", "list", "--endpoint", server.url
    )
    assert result.exit_code == 0, result.output


def test_deployments_list(env: dict[str, str]) -> None:
    result = invoke(env, "deployments", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert rows["echo"][:2] == ["scripted", "cupola"]
    assert rows["weather-bot"][:2] == ["scripted", "cupola"]
    assert rows["local-small"][:2] == ["embedded", "HuggingFaceTB"]
    assert set(rows) >= {"echo", "weather-bot", "local-small", "unreachable"}


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'keys.db'}\n")
    env = {"CUPOLA_CONFIG": str(config), "COLUMNS": "200"}  # the table is 7 columns wide

    assert invoke(env, "keys", "list").output.strip() == "no keys"
    created = invoke(env, "keys", "create", "ci")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("cpl-") and len(secret) > 40
    assert "not shown again" in created.stderr

    listed = invoke(env, "keys", "list")
    row = next(line for line in listed.output.splitlines() if " ci " in line)
    assert "active" in row and secret[:10] in row
    assert secret not in listed.output

    revoked = invoke(env, "keys", "revoke", "ci")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.output.startswith("revoked key ci (")
    row = next(line for line in invoke(env, "keys", "list").output.splitlines() if " ci " in line)
    assert "revoked" in row
    assert "no active key" in one_line_error(invoke(env, "keys", "revoke", "ci"))


def test_keys_unusable_database(tmp_path: Path) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text("database_url: mysql://nowhere/db\n")
    error = one_line_error(invoke({"CUPOLA_CONFIG": str(config)}, "keys", "list"))
    assert "unsupported database" in error


def test_the_cli_sends_its_key(tmp_path: Path) -> None:
    """A server that requires keys accepts the CLI once CUPOLA_API_KEY holds a created key."""
    database_url = f"sqlite:///{tmp_path / 'auth.db'}"
    config = tmp_path / "cupola.yaml"
    config.write_text(f"database_url: {database_url}\n")
    env = {"CUPOLA_CONFIG": str(config)}
    secret = invoke(env, "keys", "create", "cli").stdout.strip().splitlines()[-1]

    live = start_server(make_settings(database_url, auth={"required": "always"}))
    try:
        env["CUPOLA_ENDPOINT"] = live.url
        refused = one_line_error(invoke(env, "deployments", "list"))
        assert "API key is required" in refused
        wrong = one_line_error(invoke({**env, "CUPOLA_API_KEY": "cpl-wrong"}, "agent", "list"))
        assert "API key is required" in wrong
        accepted = invoke({**env, "CUPOLA_API_KEY": secret}, "deployments", "list")
        assert accepted.exit_code == 0, accepted.output
        assert "echo" in accepted.output
    finally:
        live.stop()
