"""Every tool type cupola knows: how its entry is validated, and how a server-side entry
becomes a :class:`Toolset` for one response."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cupola.domain.records import Item
from cupola.domain.versions import parse_selector
from cupola.exceptions import NotFound, UserError
from cupola.settings import McpServerConfig, Settings
from cupola.tools.base import Rendered, SecretResolver, Toolset
from cupola.tools.egress import EgressPolicy
from cupola.tools.mcp.config import declared_entry, is_reference

if TYPE_CHECKING:
    from cupola.store import SqlStore
    from cupola.tools.mcp.client import McpPool

Normalizer = Callable[[dict[str, Any], str], dict[str, Any]]
Renderer = Callable[[Item], Rendered | None]

# type -> (module, entry normalizer)
_NORMALIZERS: dict[str, tuple[str, str]] = {
    "mcp": ("cupola.tools.mcp.toolset", "normalize_mcp_tool"),
    "openapi": ("cupola.tools.openapi", "normalize_openapi_tool"),
    "code_interpreter": ("cupola.tools.code_interpreter", "normalize_code_interpreter_tool"),
    "file_search": ("cupola.tools.file_search", "normalize_file_search_tool"),
    "toolbox": ("cupola.tools.toolbox", "normalize_toolbox_tool"),
}
# output item type -> (module, renderer): how a finished tool item reads in history
_RENDERERS: dict[str, tuple[str, str]] = {
    "mcp_call": ("cupola.tools.mcp.toolset", "render_mcp_call"),
    "openapi_call": ("cupola.tools.openapi", "render_openapi_call"),
    "code_interpreter_call": ("cupola.tools.code_interpreter", "render_code_interpreter_call"),
    "file_search_call": ("cupola.tools.file_search", "render_file_search_call"),
}
SERVER_ITEM_TYPES = frozenset(
    {*_RENDERERS, "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"}
)


def _load(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def server_tool_types() -> tuple[str, ...]:
    return tuple(_NORMALIZERS)


def normalize_server_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate one server-side tool entry; return its echoed shape."""
    kind = raw.get("type")
    spec = _NORMALIZERS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        supported = ", ".join(["function", "namespace", *_NORMALIZERS])
        raise UserError(
            f"{where}.type {kind!r} is not supported by this server (supported: {supported})",
            param=f"{where}.type",
            code="unsupported_tool",
        )
    normalizer: Normalizer = _load(*spec)
    return normalizer(raw, where)


def render_item(item: Item) -> Rendered | None:
    """A finished server tool item as the model sees it, or None for items it never sees."""
    spec = _RENDERERS.get(item.get("type", ""))
    if spec is None:
        return None
    renderer: Renderer = _load(*spec)
    return renderer(item)


@dataclass
class ToolEnv:
    """What server-side tools need from the running server; one per app."""

    settings: Settings
    store: SqlStore
    secrets: SecretResolver | None = None
    egress: EgressPolicy = field(init=False)
    _pool: McpPool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # loopback resolved once: unset means "only while the server needs no keys"
        loopback = self.settings.loopback_tools_allowed
        self.egress = EgressPolicy(
            self.settings.tools.model_copy(update={"allow_loopback": loopback})
        )

    @property
    def mcp_pool(self) -> McpPool:
        if self._pool is None:
            from cupola.tools.mcp.client import McpPool

            self._pool = McpPool(self.egress, allow_commands=self.settings.tools.allow_commands)
        return self._pool

    async def check(self, tools: list[dict[str, Any]], project: str) -> None:
        """Refuse (404) a request whose tools name resources that do not exist, before
        anything runs: vector stores of file search, toolboxes and their versions, MCP
        servers named but not declared in cupola.yaml (also inside a toolbox)."""
        for tool in tools:
            if tool["type"] == "file_search":
                await self.store.check_vector_stores(project, tool["vector_store_ids"])
            elif tool["type"] == "mcp" and is_reference(tool):
                self.declared_server(tool)
            elif tool["type"] == "toolbox":
                version = parse_selector(tool.get("version"))
                found = await self.store.get_toolbox_version(project, tool["name"], version)
                for entry in found.tools:
                    if entry.get("type") == "mcp" and is_reference(entry):
                        self.declared_server(entry, f"toolbox {found.name!r}")

    def normalize_entry(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """:func:`normalize_server_tool`, and an ``mcp`` entry naming a server must name one
        cupola.yaml declares (404 otherwise): the entry check of toolbox versions."""
        tool = normalize_server_tool(raw, where)
        if tool["type"] == "mcp" and is_reference(tool):
            self.declared_server(tool)
        return tool

    def declared_server(self, tool: dict[str, Any], via: str | None = None) -> McpServerConfig:
        """The cupola.yaml declaration an ``mcp`` reference names: 404 when there is none
        (or it is disabled), 400 for a stdio one while ``tools.allow_commands`` is off."""
        label = tool["server_label"]
        where = getattr(tool, "where", None)
        param = f"{where}.server_label" if where else "server_label"
        server = self.settings.mcp_servers.get(label)
        inside = f" (in {via})" if via else ""
        if server is None or not server.enabled:
            names = sorted(n for n, s in self.settings.mcp_servers.items() if s.enabled)
            known = f"declared: {', '.join(names)}" if names else "none is declared"
            state = "is disabled" if server is not None else "is not declared"
            raise NotFound(
                f"MCP server '{label}'{inside} {state} in cupola.yaml (mcp_servers; {known}). "
                "An mcp tool without server_url names a declared server; give server_url to "
                "reach another one",
                param=param,
                code="mcp_server_not_found",
            )
        if server.command is not None and not self.settings.tools.allow_commands:
            raise UserError(
                f"MCP server '{label}'{inside} is a local command, and local MCP servers are "
                "disabled on this server (tools.allow_commands: false)",
                param=param,
                code="command_not_allowed",
            )
        return server

    async def toolsets(self, tools: list[dict[str, Any]], project: str) -> list[Toolset]:
        """Toolsets for a response's server-side tool entries (function tools are skipped)."""
        out: list[Toolset] = []
        for tool in tools:
            out += await self._build(tool, project)
        return out

    async def _build(self, tool: dict[str, Any], project: str) -> list[Toolset]:
        kind = tool["type"]
        if kind == "function":
            return []
        if kind == "mcp":
            from cupola.tools.mcp.toolset import McpToolset

            if is_reference(tool):
                tool = declared_entry(tool, self.declared_server(tool))
            return [McpToolset(tool, self.mcp_pool, self.secrets, project)]
        if kind == "openapi":
            from cupola.tools.openapi import OpenApiToolset

            return [OpenApiToolset(tool, self.egress, self.secrets, project, self.settings.tools)]
        if kind == "code_interpreter":
            from cupola.tools.code_interpreter import CodeInterpreterToolset

            return [CodeInterpreterToolset(tool, self.settings.code_interpreter, files=self.store)]
        if kind == "file_search":
            from cupola.tools.file_search import FileSearchToolset

            return [FileSearchToolset(tool, self.store, project)]
        if kind == "toolbox":
            from cupola.tools.toolbox import toolbox_entries

            entries = await toolbox_entries(self.store, project, tool)
            return await self.toolsets(entries, project)
        raise UserError(f"tool type {kind!r} cannot run on the server", code="unsupported_tool")

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
