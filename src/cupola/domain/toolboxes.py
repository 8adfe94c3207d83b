"""Toolboxes: a named, versioned bundle of tools served as one MCP endpoint.

This module holds the plain data (:class:`ToolboxVersion`, :class:`Toolbox`), the checks a
version's ``tools`` go through, the wire shapes azure-ai-projects parses (``ToolboxObject``,
``ToolboxVersionObject``) and toolbox files (the YAML kept in a repo, applied with
``cupola toolbox apply``):

```yaml
name: support-tools
description: Search, docs and GitHub for the support agents
metadata: {team: support}
tools:
  - type: mcp
    server_label: github
    server_url: https://api.githubcopilot.com/mcp
  - type: mcp
    server_label: notes
    command: [python, -m, notes_server]      # cupola extension: a stdio MCP server
  - type: openapi
    openapi: {name: weather, spec_file: specs/weather.yaml}   # read relative to this file
```
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cupola.domain.agents import AGENT_NAME
from cupola.domain.limits import parse_version
from cupola.exceptions import UserError

TOOLBOX_TOOL_TYPES = ("mcp", "openapi", "code_interpreter", "file_search")
"""The tool types a toolbox version may hold."""

MAX_TOOLS = 128
LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

EntryCheck = Callable[[dict[str, Any], str], dict[str, Any]]
"""Validates one tool entry (``where`` is its location, e.g. ``tools[2]``, for messages) and
returns it in its stored shape; raises :class:`UserError`. The same signature as
``cupola.tools.registry.normalize_server_tool``."""


@dataclass(frozen=True, slots=True)
class ToolboxVersion:
    """One immutable, numbered version of a toolbox."""

    name: str
    version: int
    tools: list[dict[str, Any]]
    description: str | None
    metadata: dict[str, str]
    created_at: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class Toolbox:
    """A toolbox: its default version (what the stable endpoint serves) and its latest."""

    name: str
    default: ToolboxVersion
    latest: ToolboxVersion
    created_at: int
    updated_at: int

    @property
    def default_version(self) -> int:
        return self.default.version


def check_toolbox_name(name: str) -> str:
    if not AGENT_NAME.match(name):
        raise UserError(
            "a toolbox name is 1-63 letters, digits, '-' or '_', starting with a letter or digit",
            param="name",
            code="invalid_name",
        )
    return name


def version_number(raw: str | int, param: str = "version") -> int:
    """A version as the wire gives it (``"3"``) as a number."""
    return parse_version(raw, param, "a toolbox version")


# ---- tools ---------------------------------------------------------------------------------


def _label(value: Any, where: str) -> str:
    if not isinstance(value, str) or not LABEL.match(value):
        raise UserError(f"{where} must be 1-64 letters, digits, '_' or '-'", param=where)
    return value


def _optional_str(raw: dict[str, Any], key: str, where: str) -> None:
    if raw.get(key) is not None and not isinstance(raw[key], str):
        raise UserError(f"{where}.{key} must be a string", param=f"{where}.{key}")


def _check_mcp(raw: dict[str, Any], where: str) -> None:
    _label(raw.get("server_label"), f"{where}.server_label")
    url, command = raw.get("server_url"), raw.get("command")
    if (url is None) == (command is None):
        raise UserError(
            f"{where} needs exactly one of server_url (a remote MCP server) or command "
            "(a stdio MCP server, a list of strings)",
            param=where,
        )
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise UserError(f"{where}.server_url must be an http(s) URL", param=f"{where}.server_url")
    if command is not None and not (
        isinstance(command, list)
        and command
        and all(isinstance(part, str) and part for part in command)
    ):
        raise UserError(
            f"{where}.command must be a non-empty list of strings", param=f"{where}.command"
        )


def _check_openapi(raw: dict[str, Any], where: str) -> None:
    spec = raw.get("openapi")
    if not isinstance(spec, dict):
        raise UserError(
            f"{where}.openapi must be an object with name and spec", param=f"{where}.openapi"
        )
    _label(spec.get("name"), f"{where}.openapi.name")
    if not isinstance(spec.get("spec"), dict):
        raise UserError(
            f"{where}.openapi.spec must be an OpenAPI document (an object)",
            param=f"{where}.openapi.spec",
        )


def _check_file_search(raw: dict[str, Any], where: str) -> None:
    ids = raw.get("vector_store_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise UserError(
            f"{where}.vector_store_ids must be a list of strings",
            param=f"{where}.vector_store_ids",
        )


_SHALLOW: dict[str, Callable[[dict[str, Any], str], None]] = {
    "mcp": _check_mcp,
    "openapi": _check_openapi,
    "code_interpreter": lambda raw, where: None,
    "file_search": _check_file_search,
}


def shallow_entry_check(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The default :data:`EntryCheck`: the fields a toolbox cannot do without, checked
    shallowly; the entry is stored as given. The full per-type validators replace it."""
    kind = raw.get("type")
    check = _SHALLOW.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise _unsupported(kind, where)
    _optional_str(raw, "name", where)
    _optional_str(raw, "description", where)
    check(raw, where)
    return dict(raw)


def tool_label(entry: dict[str, Any]) -> str:
    """The name an entry goes by in its toolbox: an MCP server's ``server_label``, an OpenAPI
    tool's ``openapi.name``, else the entry's ``name`` or its type. Unique in a version."""
    if entry.get("type") == "mcp" and entry.get("server_label"):
        return str(entry["server_label"])
    spec = entry.get("openapi")
    if entry.get("type") == "openapi" and isinstance(spec, dict) and spec.get("name"):
        return str(spec["name"])
    return str(entry.get("name") or entry.get("type"))


def _unsupported(kind: Any, where: str) -> UserError:
    supported = ", ".join(TOOLBOX_TOOL_TYPES)
    what = f"type {kind!r} cannot be" if kind is not None else "type is missing; a tool must be"
    return UserError(
        f"{where}: tool {what} in a toolbox (supported: {supported})",
        param=f"{where}.type",
        code="unsupported_tool",
    )


def check_toolbox_tools(
    tools: Any, entry_check: EntryCheck | None = None, where: str = "tools"
) -> list[dict[str, Any]]:
    """A toolbox version's tools, checked: a non-empty list of entries of a supported type,
    each passed through ``entry_check`` (default :func:`shallow_entry_check`), with labels
    (:func:`tool_label`) unique in the version. Returns the entries as ``entry_check`` gives
    them back; raises :class:`UserError` naming the index."""
    check = entry_check or shallow_entry_check
    if not isinstance(tools, list):
        raise UserError(f"{where} must be a list of tool entries", param=where)
    if not tools:
        raise UserError(f"{where} must hold at least one tool", param=where)
    if len(tools) > MAX_TOOLS:
        raise UserError(f"{where} holds at most {MAX_TOOLS} tools", param=where)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(tools):
        at = f"{where}[{i}]"
        if not isinstance(raw, dict):
            raise UserError(f"{at} must be an object", param=at)
        if raw.get("type") not in TOOLBOX_TOOL_TYPES:
            raise _unsupported(raw.get("type"), at)
        entry = check(raw, at)
        label = tool_label(entry)
        if label in seen:
            raise UserError(
                f"{at}: {label!r} is already the label of {where}[{seen[label]}]; "
                "tool labels must be unique in a toolbox",
                param=at,
                code="duplicate_tool",
            )
        seen[label] = i
        out.append(entry)
    return out


# ---- wire shapes ---------------------------------------------------------------------------


def mcp_endpoint(project: str, name: str, version: int | None = None) -> str:
    """The toolbox's MCP endpoint (a path under the server root). Without a version it serves
    whichever version is the default at the time; ``?version=N`` pins one."""
    path = f"/api/projects/{project}/toolboxes/{name}/mcp"
    return path if version is None else f"{path}?version={version}"


def version_object(v: ToolboxVersion, project: str) -> dict[str, Any]:
    """``ToolboxVersionObject`` as azure-ai-projects parses it (plus ``mcp_endpoint``, pinned
    to this version)."""
    return {
        "object": "toolbox.version",
        "id": f"{v.name}:{v.version}",
        "name": v.name,
        "version": str(v.version),
        "description": v.description,
        "created_at": v.created_at,
        "metadata": v.metadata,
        "tools": v.tools,
        "mcp_endpoint": mcp_endpoint(project, v.name, v.version),
    }


def toolbox_object(tb: Toolbox, project: str) -> dict[str, Any]:
    """``ToolboxObject``: the toolbox, its default version and latest version (plus
    ``mcp_endpoint``, the stable endpoint that serves the default version)."""
    return {
        "object": "toolbox",
        "id": tb.name,
        "name": tb.name,
        "created_at": tb.created_at,
        "updated_at": tb.updated_at,
        "default_version": str(tb.default_version),
        "versions": {"latest": version_object(tb.latest, project)},
        "mcp_endpoint": mcp_endpoint(project, tb.name),
    }


# ---- toolbox files -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolboxManifest:
    name: str
    tools: list[dict[str, Any]]
    description: str | None
    metadata: dict[str, str]

    def body(self) -> dict[str, Any]:
        """The ``create_version`` request body."""
        out: dict[str, Any] = {"tools": self.tools, "metadata": self.metadata}
        if self.description is not None:
            out["description"] = self.description
        return out


def _read_structured(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{what}: cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{what}: {path} is not valid JSON or YAML: {exc}") from None


def _inline_spec_file(tool: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """An OpenAPI entry's ``openapi.spec_file`` read (relative to the toolbox file) into
    ``openapi.spec``."""
    spec = tool.get("openapi")
    if tool.get("type") != "openapi" or not isinstance(spec, dict) or "spec_file" not in spec:
        return tool
    spec = dict(spec)
    spec_file = spec.pop("spec_file")
    if "spec" in spec:
        raise UserError(f"{where}: give openapi.spec or openapi.spec_file, not both")
    spec["spec"] = _read_structured(base / str(spec_file), f"{where}.openapi.spec_file")
    return {**tool, "openapi": spec}


def _resolve_cwd(tool: dict[str, Any], base: Path) -> dict[str, Any]:
    """A stdio MCP entry's relative ``cwd`` is relative to the toolbox file."""
    cwd = tool.get("cwd")
    if tool.get("type") != "mcp" or not tool.get("command") or not isinstance(cwd, str):
        return tool
    if Path(cwd).is_absolute():
        return tool
    return {**tool, "cwd": str((base / cwd).resolve())}


def load_toolbox_file(path: Path) -> ToolboxManifest:
    """Read a toolbox file. Its shape is checked here; its tools are checked by the server
    (which may know more tool types and fields than this client)."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a toolbox file holds a mapping with name and tools")
    name = data.get("name")
    if not isinstance(name, str):
        raise UserError(f"{path}: 'name' is required")
    check_toolbox_name(name)
    tools = data.get("tools")
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise UserError(f"{path}: 'tools' must be a list of tool mappings")
    where = f"{path}: tools"
    tools = [
        _resolve_cwd(_inline_spec_file(t, path.parent, f"{where}[{i}]"), path.parent)
        for i, t in enumerate(tools)
    ]
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: 'metadata' must be a mapping of strings")
    description = data.get("description")
    return ToolboxManifest(
        name=name,
        tools=tools,
        description=str(description) if description is not None else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )
