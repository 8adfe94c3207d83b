"""Toolboxes: a named, versioned bundle of tools served as one MCP endpoint.

This module holds the plain data (:class:`ToolboxVersion`, :class:`Toolbox`) and the checks a
version's ``tools`` go through. The wire shapes are in ``cupola.server.objects``; toolbox
files (YAML) are read by ``cupola.cli.manifests``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cupola.domain.agents import AGENT_NAME
from cupola.domain.versions import version_number as version_number  # re-exported
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
    """A toolbox: its default version (what the stable endpoint serves), its latest, and its
    labels (label name to version number, ``default`` among them)."""

    name: str
    default: ToolboxVersion
    latest: ToolboxVersion
    created_at: int
    updated_at: int
    labels: dict[str, int] = field(default_factory=dict)

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
    if url is not None and command is not None:  # neither: a server declared in cupola.yaml
        raise UserError(
            f"{where} takes server_url (a remote MCP server) or command (a stdio MCP "
            "server, a list of strings), not both; with neither, server_label names a server "
            "declared in cupola.yaml",
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
