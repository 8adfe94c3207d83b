"""Each toolbox served as an MCP streamable-HTTP endpoint:
``/api/projects/{project}/toolboxes/{name}/mcp`` answers with the toolbox's default version
(``?version=N`` pins one). Every request resolves the version afresh, so promoting a new
default changes what the same URL serves, with no client reconfigured.

Tools keep their own names; a name two entries share is served as ``<label>__<tool>`` for
each of them (the label is an MCP server's ``server_label``, an OpenAPI tool's name, or the
tool type), so two servers' tools never collide. An MCP server's answer is passed through
whole (text, images, audio, embedded resources), and so are its progress notifications.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.requests import Request

from cupola.exceptions import CupolaError, UserError
from cupola.ids import new_id
from cupola.models.base import ToolCall
from cupola.runtime.tooling import ServerFunctions
from cupola.server.middleware import Receive, Scope, Send
from cupola.server.services import Services
from cupola.tools.base import ToolContext, Toolset
from cupola.tools.mcp.client import McpResult, Progress
from cupola.tools.registry import render_item

log = logging.getLogger("cupola.toolbox")


class ToolboxMcp:
    """The ASGI endpoint and the MCP server behind it."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.server: Server[Any] = Server(
            "cupola-toolbox",
            version="1",
            instructions="Tools of a cupola toolbox, named <server>__<tool>.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.manager = StreamableHTTPSessionManager(self.server, stateless=True)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)

    async def _toolsets(
        self, ctx: ServerRequestContext[Any, Any]
    ) -> tuple[list[Toolset], ToolContext]:
        request = ctx.request
        if not isinstance(request, Request):
            raise UserError("toolbox endpoints are served over HTTP only")
        project = self.s.project(request)
        name = request.path_params["name"]
        raw = request.query_params.get("version")
        if raw is not None and not raw.isdigit():
            raise UserError(f"version must be a number, not {raw!r}", param="version")
        version = await self.s.store.get_toolbox_version(project, name, int(raw) if raw else None)
        toolsets = await self.s.tools.toolsets(list(version.tools), project)
        tool_ctx = ToolContext(
            project=project,
            response_id=new_id("mcpreq"),
            conversation_id=None,
            data_dir=self.s.settings.data_dir,
        )
        for toolset in toolsets:
            await toolset.start(tool_ctx)
        return toolsets, tool_ctx

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        toolsets, _ = await self._guarded(ctx)
        try:
            tools = [
                types.Tool(
                    name=spec.name, description=spec.description, input_schema=spec.parameters
                )
                for spec in ServerFunctions(toolsets).specs
            ]
        finally:
            await _close(toolsets)
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        toolsets, tool_ctx = await self._guarded(ctx)
        try:
            found = ServerFunctions(toolsets).get(params.name)
            if found is None:
                return _error(f"unknown tool {params.name!r}")
            toolset, spec = found
            results: list[McpResult] = []
            arguments = orjson.dumps(params.arguments or {}).decode()
            item = await toolset.run(
                ToolCall(new_id("call"), spec.name, arguments),
                tool_ctx,
                on_result=results.append,
                progress=_progress_forwarder(ctx, params),
            )
        finally:
            await _close(toolsets)
        failed = item.get("status") == "failed" or bool(item.get("error"))
        if results and results[0].content:  # an MCP server's own answer, passed through
            return types.CallToolResult.model_validate(
                {"content": results[0].content, "isError": results[0].is_error}
            )
        rendered = render_item(item)
        text = rendered.output if rendered is not None else str(item.get("error") or "")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=failed
        )

    async def _guarded(
        self, ctx: ServerRequestContext[Any, Any]
    ) -> tuple[list[Toolset], ToolContext]:
        try:
            return await self._toolsets(ctx)
        except CupolaError as exc:  # unknown toolbox or version, bad ?version=
            raise MCPError(INVALID_PARAMS, exc.message) from None


def _progress_forwarder(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> Progress | None:
    """Relays the upstream server's progress to the caller, under the caller's token."""
    meta: Any = ctx.meta or params.meta or {}
    token = meta.get("progress_token") or meta.get("progressToken")
    if token is None:
        return None

    async def forward(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    return forward


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


async def _close(toolsets: list[Toolset]) -> None:
    for toolset in toolsets:
        await toolset.aclose()
