"""Checking a toolbox version's tools, the wire shapes, and toolbox files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cupola.cli.manifests import load_toolbox_file
from cupola.domain.toolboxes import (
    Toolbox,
    ToolboxVersion,
    check_toolbox_name,
    check_toolbox_tools,
    shallow_entry_check,
    tool_label,
    version_number,
)
from cupola.exceptions import UserError
from cupola.server.objects import toolbox_object
from cupola.server.objects import toolbox_version_object as version_object

SPEC: dict[str, Any] = {"openapi": "3.0.0", "info": {"title": "w", "version": "1"}, "paths": {}}
GOOD: list[dict[str, Any]] = [
    {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"},
    {"type": "mcp", "server_label": "notes", "command": ["python", "-m", "notes"]},
    {"type": "openapi", "openapi": {"name": "weather", "spec": SPEC}},
    {"type": "code_interpreter"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
]


def refused(tools: Any) -> UserError:
    with pytest.raises(UserError) as info:
        check_toolbox_tools(tools)
    assert info.value.status_code == 400
    return info.value


def test_every_supported_type_passes_unchanged() -> None:
    assert check_toolbox_tools(GOOD) == GOOD
    assert [tool_label(t) for t in GOOD] == [
        "github",
        "notes",
        "weather",
        "code_interpreter",
        "file_search",
    ]


@pytest.mark.parametrize("kind", ["function", "web_search", "toolbox", "azure_ai_search"])
def test_other_types_are_refused_naming_index_and_type(kind: str) -> None:
    error = refused([GOOD[0], {"type": kind, "name": "x"}])
    assert error.param == "tools[1].type" and error.code == "unsupported_tool"
    assert f"tools[1]: tool type {kind!r} cannot be in a toolbox" in error.message
    assert "mcp, openapi, code_interpreter, file_search" in error.message


def test_an_mcp_entry_may_name_a_declared_server() -> None:
    """No server_url and no command: a server declared in cupola.yaml, used by its label."""
    assert check_toolbox_tools([{"type": "mcp", "server_label": "fs"}]) == [
        {"type": "mcp", "server_label": "fs"}
    ]


def test_a_missing_type_is_refused() -> None:
    error = refused([{"server_label": "x"}])
    assert error.param == "tools[0].type" and "type is missing" in error.message


@pytest.mark.parametrize(
    ("entry", "param", "words"),
    [
        ({"type": "mcp", "server_url": "https://x"}, "tools[0].server_label", "server_label"),
        ({"type": "mcp", "server_label": "a b", "server_url": "https://x"}, None, "letters"),
        (
            {"type": "mcp", "server_label": "a", "server_url": "https://x", "command": ["x"]},
            "tools[0]",
            "not both",
        ),
        ({"type": "mcp", "server_label": "a", "server_url": "ftp://x"}, None, "http(s) URL"),
        ({"type": "mcp", "server_label": "a", "command": []}, "tools[0].command", "non-empty"),
        ({"type": "mcp", "server_label": "a", "command": "python"}, None, "list of strings"),
        ({"type": "openapi"}, "tools[0].openapi", "name and spec"),
        ({"type": "openapi", "openapi": {"spec": SPEC}}, "tools[0].openapi.name", "letters"),
        ({"type": "openapi", "openapi": {"name": "w"}}, "tools[0].openapi.spec", "OpenAPI"),
        ({"type": "file_search", "vector_store_ids": "vs_1"}, None, "list of strings"),
        ({"type": "code_interpreter", "description": 3}, "tools[0].description", "string"),
    ],
)
def test_shallow_entry_checks(entry: dict[str, Any], param: str | None, words: str) -> None:
    error = refused([entry])
    assert words in error.message
    if param is not None:
        assert error.param == param


@pytest.mark.parametrize(
    ("tools", "words"),
    [
        (None, "must be a list"),
        ({"type": "mcp"}, "must be a list"),
        ([], "at least one tool"),
        (["mcp"], "tools[0] must be an object"),
        ([{"type": "code_interpreter"}] * 129, "at most 128"),
    ],
)
def test_the_list_itself_is_checked(tools: Any, words: str) -> None:
    assert words in refused(tools).message


def test_labels_are_unique_in_a_version() -> None:
    twice = [GOOD[0], {**GOOD[1], "server_label": "github"}]
    error = refused(twice)
    assert error.code == "duplicate_tool" and error.param == "tools[1]"
    assert "already the label of tools[0]" in error.message
    # An OpenAPI tool and an MCP server share one namespace; two unnamed file searches clash.
    assert refused([GOOD[0], {"type": "openapi", "openapi": {"name": "github", "spec": SPEC}}])
    assert refused([GOOD[4], GOOD[4]])
    named = [GOOD[4], {**GOOD[4], "name": "archive"}]
    assert check_toolbox_tools(named) == named


def test_the_entry_check_is_injectable() -> None:
    seen: list[str] = []

    def deep(raw: dict[str, Any], where: str) -> dict[str, Any]:
        seen.append(where)
        if raw.get("server_url") == "https://blocked.example":
            raise UserError(f"{where}.server_url is not allowed", param=f"{where}.server_url")
        return {**raw, "require_approval": raw.get("require_approval", "never")}

    out = check_toolbox_tools(GOOD[:2], deep, where="body.tools")
    assert seen == ["body.tools[0]", "body.tools[1]"]
    assert all(t["require_approval"] == "never" for t in out)
    with pytest.raises(UserError, match="not allowed"):
        check_toolbox_tools([{**GOOD[0], "server_url": "https://blocked.example"}], deep)
    # The toolbox-level rules hold whatever the entry check is.
    with pytest.raises(UserError, match="cannot be in a toolbox"):
        check_toolbox_tools([{"type": "function", "name": "f"}], deep)
    with pytest.raises(UserError, match="unique"):
        check_toolbox_tools([GOOD[0], GOOD[0]], deep)
    assert shallow_entry_check(GOOD[0], "x") == GOOD[0]


def test_names_and_versions() -> None:
    assert check_toolbox_name("support-tools_2") == "support-tools_2"
    for bad in ("", "-x", "a b", "x" * 64, "a/b"):
        with pytest.raises(UserError):
            check_toolbox_name(bad)
    assert version_number("3") == 3 and version_number(4) == 4
    for bad in ("x", "0", "-1", "1.5", "", "tb:5"):
        with pytest.raises(UserError):
            version_number(bad)


def test_wire_shapes() -> None:
    v1 = ToolboxVersion("tb", 1, GOOD[:1], "first", {"k": "v"}, 100, "h1")
    v2 = ToolboxVersion("tb", 2, GOOD[:2], None, {}, 200, "h2")
    assert version_object(v1, "p") == {
        "object": "toolbox.version",
        "id": "tb:1",
        "name": "tb",
        "version": "1",
        "description": "first",
        "created_at": 100,
        "metadata": {"k": "v"},
        "tools": GOOD[:1],
        "mcp_endpoint": "/api/projects/p/toolboxes/tb/mcp?version=1",
    }
    body = toolbox_object(Toolbox("tb", default=v1, latest=v2, created_at=100, updated_at=200), "p")
    assert body["id"] == body["name"] == "tb"
    assert body["default_version"] == "1" and body["updated_at"] == 200
    assert body["versions"]["latest"]["version"] == "2"
    assert body["mcp_endpoint"] == "/api/projects/p/toolboxes/tb/mcp"


def test_toolbox_file_with_spec_file(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "weather.yaml").write_text("openapi: 3.0.0\npaths: {}\n")
    path = tmp_path / "toolbox.yaml"
    path.write_text(
        "name: support\n"
        "description: Support tools\n"
        "metadata: {team: support, tier: 1}\n"
        "tools:\n"
        "  - {type: mcp, server_label: gh, server_url: 'https://example.com/mcp'}\n"
        "  - type: openapi\n"
        "    openapi: {name: weather, spec_file: specs/weather.yaml}\n"
    )
    manifest = load_toolbox_file(path)
    assert manifest.name == "support" and manifest.metadata == {"team": "support", "tier": "1"}
    assert manifest.tools[1]["openapi"] == {
        "name": "weather",
        "spec": {"openapi": "3.0.0", "paths": {}},
    }
    assert manifest.body() == {
        "tools": manifest.tools,
        "metadata": {"team": "support", "tier": "1"},
        "description": "Support tools",
    }
    assert check_toolbox_tools(manifest.tools) == manifest.tools


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("name: [oops\n", "not valid YAML"),
        ("- a list\n", "holds a mapping"),
        ("tools: []\n", "'name' is required"),
        ("name: 'bad name'\ntools: []\n", "toolbox name"),
        ("name: tb\n", "'tools' must be a list"),
        ("name: tb\ntools: [mcp]\n", "'tools' must be a list"),
        ("name: tb\ntools: []\nmetadata: [x]\n", "'metadata' must be a mapping"),
        (
            "name: tb\ntools: [{type: openapi, openapi: {name: w, spec_file: nope.json}}]\n",
            "cannot read",
        ),
        (
            "name: tb\ntools: [{type: openapi, openapi: {name: w, spec: {}, spec_file: a.json}}]\n",
            "not both",
        ),
    ],
)
def test_malformed_toolbox_files(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "toolbox.yaml"
    path.write_text(content)
    with pytest.raises(UserError, match=words.replace("(", r"\(")):
        load_toolbox_file(path)


def test_missing_toolbox_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_toolbox_file(tmp_path / "missing.yaml")
