"""The ``mcp_servers`` section of cupola.yaml: what it accepts (the entries Claude Code,
Codex and VS Code users already have), what it refuses, that its secrets stay secret, and
how a reference to a declared server narrows it without widening it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cupola.exceptions import ConfigError, UserError
from cupola.settings import McpServerConfig, load_settings
from cupola.tools.mcp.config import (
    McpReference,
    declared_entry,
    is_allowed,
    needs_approval,
    normalize_mcp_tool,
    refuse_request_commands,
)

DECLARED = str(Path(__file__).resolve().parent / "declared_server.py")
PASTED = """\
mcp_servers:
  filesystem:              # as in Claude Code's .mcp.json / VS Code's mcp.json
    type: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
    env: {GITHUB_TOKEN: "${GH_TOKEN}"}
  notes:                   # Codex style, command as a list, cwd beside cupola.yaml
    command: [python, servers/notes.py]
    args: [--verbose]
    cwd: servers
  github:
    type: http
    url: https://api.githubcopilot.com/mcp/
    headers: {Authorization: "Bearer ${GH_TOKEN}"}
    allowed_tools: [get_issue]
    require_approval: {never: {read_only: true}}
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "cupola.yaml"
    path.write_text(text)
    return load_settings(path, env=env or {})


def test_pasted_entries_load(tmp_path: Path) -> None:
    settings = load(tmp_path, PASTED, {"GH_TOKEN": "ghp_secret_value"})
    fs, notes, gh = (settings.mcp_servers[n] for n in ("filesystem", "notes", "github"))
    assert fs.argv == ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
    assert fs.env["GITHUB_TOKEN"].get_secret_value() == "ghp_secret_value"
    assert fs.cwd == tmp_path.resolve()  # default: beside cupola.yaml
    assert notes.argv == ["python", "servers/notes.py", "--verbose"]
    assert notes.cwd == tmp_path.resolve() / "servers"
    assert gh.url == "https://api.githubcopilot.com/mcp/" and gh.cwd is None
    # secrets never show in a dump, a repr or an error
    for shown in (repr(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "ghp_secret_value" not in shown


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{command: x, url: 'http://h/mcp'}", "exactly one of command"),
        ("{}", "exactly one of command"),
        ("{type: stdio, url: 'http://h/mcp'}", "type stdio needs command"),
        ("{type: http, command: x}", "type http needs url"),
        ("{type: sse, url: 'http://h/sse'}", "type"),
        ("{url: 'ftp://h/mcp'}", "http(s) URL"),
        ("{url: 'http://h/mcp', env: {A: b}}", "env applies to command only"),
        ("{command: x, headers: {A: b}}", "headers applies to url only"),
        ("{command: []}", "non-empty"),
        ("{command: x, tools: [a]}", "tools"),
    ],
)
def test_bad_entries_are_one_clear_error(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"mcp_servers\.s") as caught:
        load(tmp_path, f"mcp_servers:\n  s: {entry}\n")
    assert message in str(caught.value)


def test_a_server_name_is_a_server_label(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server_label"):
        load(tmp_path, "mcp_servers:\n  'my server': {command: x}\n")


def test_the_environment_cannot_declare_a_server(tmp_path: Path) -> None:
    env = {"CUPOLA_MCP_SERVERS__EVIL__COMMAND": "sh"}
    assert load(tmp_path, "{}\n", env).mcp_servers == {}


def reference(**fields: Any) -> dict[str, Any]:
    return normalize_mcp_tool({"type": "mcp", "server_label": "s", **fields}, "tools[2]")


def test_a_reference_is_echoed_as_sent_and_remembers_where_it_was() -> None:
    ref = reference(allowed_tools=["a"], require_approval="always")
    assert ref == {
        "type": "mcp",
        "server_label": "s",
        "allowed_tools": ["a"],
        "require_approval": "always",
    }
    assert isinstance(ref, McpReference) and ref.where == "tools[2]"
    refuse_request_commands([ref])  # names a server: starts nothing


@pytest.mark.parametrize("key", ["env", "cwd", "headers", "authorization", "project_connection_id"])
def test_a_reference_cannot_say_how_the_server_is_reached(key: str) -> None:
    value: Any = {"A": "b"} if key in ("env", "headers") else "x"
    with pytest.raises(UserError) as caught:
        reference(**{key: value})
    assert caught.value.param == f"tools[2].{key}"
    assert caught.value.code == "declared_mcp_server"


def test_a_reference_narrows_and_never_widens() -> None:
    declared = McpServerConfig(
        command="srv",
        env={"TOKEN": "t0ken-value"},  # type: ignore[dict-item]
        allowed_tools=["a", "b"],
        require_approval="never",
    )
    plain = declared_entry(reference(), declared)
    assert plain["command"] == ["srv"] and plain["env"] == {"TOKEN": "t0ken-value"}
    assert [n for n in "abc" if is_allowed(plain, n, None)] == ["a", "b"]
    assert not needs_approval(plain, "a", None)

    narrowed = declared_entry(
        reference(allowed_tools=["b", "c"], require_approval="always"), declared
    )
    assert [n for n in "abc" if is_allowed(narrowed, n, None)] == ["b"]  # c is not added
    assert needs_approval(narrowed, "b", None)  # asking for approval is honoured

    strict = McpServerConfig(command="srv", require_approval="always")
    wider = declared_entry(reference(require_approval="never"), strict)
    assert needs_approval(wider, "a", None)  # "never" cannot lift the declaration's "always"
    filtered = McpServerConfig.model_validate(
        {"url": "https://h/mcp", "require_approval": {"never": {"read_only": True}}}
    )
    entry = declared_entry(reference(), filtered)
    assert not needs_approval(entry, "read", {"readOnlyHint": True})
    assert needs_approval(entry, "write", {"readOnlyHint": False})


async def test_a_slow_starting_server_gets_its_startup_timeout(tmp_path: Path) -> None:
    """``startup_timeout_seconds`` lets a server that takes long to start (``npx -y``) connect
    although ``tools.timeout_seconds`` is shorter; without it the listing times out."""
    import sys

    from cupola.settings import ToolSettings
    from cupola.tools.egress import EgressPolicy
    from cupola.tools.mcp.client import McpError, McpPool, McpServerSpec

    server = DECLARED
    slow = f"import time, runpy; time.sleep(1.5); runpy.run_path({server!r}, run_name='__main__')"
    pool = McpPool(EgressPolicy(ToolSettings(timeout_seconds=0.8)), allow_commands=True)
    try:
        spec = McpServerSpec("slow", command=sys.executable, args=("-c", slow))
        with pytest.raises(McpError, match="0.8 s"):
            await pool.list_tools(spec)
        patient = McpServerSpec(  # another server (the pool key ignores the timeout)
            "slow", command=sys.executable, args=("-c", f"{slow}  # 2"), connect_timeout=10
        )
        names = {t.name for t in await pool.list_tools(patient)}
        assert names == {"whoami", "leak", "hidden"}
        assert pool.connected(patient)
        result = await pool.call_tool(patient, "whoami", {}, timeout=0.8)  # warm: no extra time
        assert not result.is_error
    finally:
        await pool.aclose()
