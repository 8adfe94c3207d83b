"""``cupola connections`` against a live server: secrets come from the environment or stdin,
never from the command line, and are never printed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cupola.cli.main import cli
from live_server import LiveServer


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def env(conn_server: LiveServer, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    return {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": conn_server.url}


def test_create_list_show_delete(env: dict[str, str], unique: str) -> None:
    name = f"cli-weather-{unique}"
    secret = f"sk-cli-{unique}-7a6b5c4d"
    env = {**env, "WEATHER_KEY": secret}
    result = invoke(
        env,
        "connections",
        "create",
        name,
        "--type",
        "ApiKey",
        "--target",
        "https://weather.example.com",
        "--key-env",
        "WEATHER_KEY",
        "--header-name",
        "X-Api-Key",
        "--metadata",
        "team=travel",
        "--default",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"created connection {name} (conn_")
    assert secret not in result.output

    again = invoke(
        env,
        "connections",
        "create",
        name,
        "--type",
        "ApiKey",
        "--target",
        "https://x",
        "--key-env",
        "WEATHER_KEY",
    )
    assert "already exists" in one_line_error(again)

    listed = invoke(env, "connections", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith(name))
    assert row.split()[:4] == [name, "ApiKey", "ApiKey", "yes"]
    assert secret not in listed.output

    shown = invoke(env, "connections", "show", name)
    assert shown.exit_code == 0, shown.output
    assert "credentials: ApiKey (secret not shown)" in shown.output
    assert "metadata:    header_name=X-Api-Key" in shown.output
    assert "metadata:    team=travel" in shown.output
    as_json = json.loads(invoke(env, "connections", "show", name, "--json").output)
    assert as_json["credentials"] == {"type": "ApiKey"} and as_json["isDefault"] is True
    assert secret not in shown.output

    deleted = invoke(env, "connections", "delete", name, "--yes")
    assert deleted.exit_code == 0 and deleted.output.strip() == f"deleted connection {name}"
    assert "not found" in one_line_error(invoke(env, "connections", "show", name))


def test_custom_keys_from_env_and_key_from_stdin(
    env: dict[str, str], conn_server: LiveServer, unique: str
) -> None:
    custom = f"cli-custom-{unique}"
    env = {**env, "ORG_KEY": f"org-{unique}-secret", "ORG_ID": "travel-42"}
    result = invoke(
        env,
        "connections",
        "create",
        custom,
        "--type",
        "CustomKeys",
        "--target",
        "https://custom.example.com",
        "--header",
        "X-Org-Key=ORG_KEY",
        "--header",
        "X-Org-Id=ORG_ID",
    )
    assert result.exit_code == 0, result.output
    shown = invoke(env, "connections", "show", custom, "--json")
    assert json.loads(shown.output)["credentials"] == {"type": "CustomKeys"}
    assert f"org-{unique}-secret" not in shown.output

    token = f"tok-stdin-{unique}-1f2e"
    piped = f"cli-token-{unique}"
    result = invoke(
        env,
        "connections",
        "create",
        piped,
        "--type",
        "RemoteTool_Preview",
        "--target",
        "https://mcp.example.com",
        "--auth",
        "BearerToken",
        "--key-stdin",
        input=token + "\n",
    )
    assert result.exit_code == 0, result.output
    assert token not in result.output

    with httpx.Client(base_url=conn_server.project_url) as http:
        got = http.get(f"/connections/{piped}").json()
    assert got["credentials"] == {"type": "BearerToken"} and got["type"] == "RemoteTool_Preview"

    replaced = invoke(
        env,
        "connections",
        "create",
        piped,
        "--type",
        "RemoteTool_Preview",
        "--target",
        "https://mcp.example.com",
        "--replace",
    )
    assert replaced.exit_code == 0 and replaced.output.startswith("replaced connection")
    for name in (custom, piped):
        assert invoke(env, "connections", "delete", name, "--yes").exit_code == 0


def test_bad_invocations_are_one_line_errors(env: dict[str, str], unique: str) -> None:
    base = [
        "connections",
        "create",
        f"cli-bad-{unique}",
        "--type",
        "ApiKey",
        "--target",
        "https://x",
    ]
    assert "MISSING_VAR" in one_line_error(invoke(env, *base, "--key-env", "MISSING_VAR"))
    assert "--key-stdin read an empty key" in one_line_error(
        invoke(env, *base, "--key-stdin", input="\n")
    )
    assert "needs the key" in one_line_error(invoke(env, *base, "--auth", "ApiKey"))
    assert "NAME=VALUE" in one_line_error(
        invoke({**env, "V": "value-1234"}, *base, "--header", "no-equals-sign")
    )
    assert "--header is for" in one_line_error(
        invoke({**env, "V": "value-1234"}, *base, "--auth", "ApiKey", "--header", "X=V")
    )
    bad_header = invoke({**env, "V": "value-1234"}, *base, "--header", "Host=V")
    assert "credentials.keys.Host" in one_line_error(bad_header)
    assert "value-1234" not in bad_header.output
    assert "not found" in one_line_error(invoke(env, "connections", "delete", "nope", "--yes"))
