"""Each toolbox served as an MCP streamable-HTTP endpoint:
``/api/projects/{project}/toolboxes/{name}/mcp`` answers with the toolbox's default version
(``?version=N`` pins one). Every request resolves the version afresh, so promoting a new
default changes what the same URL serves, with no client reconfigured.

Tools keep their own names; a name two entries share is served as ``<label>__<tool>`` for
each of them (the label is an MCP server's ``server_label``, an OpenAPI tool's name, or the
tool type), so two servers' tools never collide. An MCP server's answer is passed through
whole (text, images, audio, embedded resources), and so are its progress notifications, its
log messages (at the level the caller set with ``logging/setLevel``, or per request on
2026-07-28 connections) and its sampling and elicitation requests: the caller answers those,
on the stream of the call that caused them. The endpoint keeps MCP sessions (``Mcp-Session-Id``)
so those answers find their way back.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel
from starlette.requests import Request

from cupola.exceptions import CupolaError, UserError
from cupola.ids import new_id
from cupola.models.base import ToolCall
from cupola.runtime.tooling import ServerFunctions
from cupola.server.middleware import Receive, Scope, Send
from cupola.server.services import Services
from cupola.tools.base import ToolContext, Toolset
from cupola.tools.mcp.client import McpResult, Progress
from cupola.tools.mcp.relay import at_least
from cupola.tools.registry import render_item

log = logging.getLogger("cupola.toolbox")
_Result = TypeVar("_Result", bound=BaseModel)
_MAX_SESSIONS = 10_000
_IDLE_SECONDS = 1800.0


class ToolboxMcp:
    """The ASGI endpoint and the MCP server behind it."""

    def __init__(self, services: Services) -> None:
        self.s = services
        with warnings.catch_warnings():  # logging/setLevel: deprecated at 2026-07-28, still relayed
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server: Server[Any] = self._server()
        self.manager = StreamableHTTPSessionManager(
            self.server, session_idle_timeout=_IDLE_SECONDS, max_sessions=_MAX_SESSIONS
        )
        self._log_levels: OrderedDict[str, types.LoggingLevel] = OrderedDict()
        """The level each MCP session asked for with ``logging/setLevel``, newest last."""

    def _server(self) -> Server[Any]:
        return Server(
            "cupola-toolbox",
            version="1",
            instructions="Tools of a cupola toolbox, named <server>__<tool>.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_set_logging_level=self._set_logging_level,
        )

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
        if raw is not None and not (raw.isascii() and raw.isdigit()):
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

    async def _set_logging_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        session_id = _session_id(ctx)
        if session_id is not None:
            self._log_levels[session_id] = params.level
            self._log_levels.move_to_end(session_id)
            while len(self._log_levels) > _MAX_SESSIONS:
                self._log_levels.popitem(last=False)
        return types.EmptyResult()

    def _log_level(self, ctx: ServerRequestContext[Any, Any]) -> types.LoggingLevel | None:
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            meta: Any = ctx.meta or {}
            level = meta.get(LOG_LEVEL_META_KEY)
            return level if isinstance(level, str) else None  # type: ignore[return-value]
        session_id = _session_id(ctx)
        return self._log_levels.get(session_id) if session_id is not None else None

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
                relay=CallerRelay.of(ctx, self._log_level(ctx)),
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


class CallerRelay:
    """Carries an upstream server's log messages and requests, made while it runs one tool
    call, to the MCP client that made the call (see :class:`cupola.tools.mcp.relay.Relay`)."""

    def __init__(
        self, ctx: ServerRequestContext[Any, Any], log_level: types.LoggingLevel | None
    ) -> None:
        self._ctx = ctx
        self._level = log_level

    @classmethod
    def of(
        cls, ctx: ServerRequestContext[Any, Any], log_level: types.LoggingLevel | None
    ) -> CallerRelay | None:
        """A relay for a caller that asked for log messages or can answer sampling or
        elicitation requests; None for the rest, whose calls then share the pooled session."""
        caps = ctx.session.client_capabilities
        if log_level is None and (caps is None or not (caps.sampling or caps.elicitation)):
            return None
        return cls(ctx, log_level)

    @property
    def log_level(self) -> types.LoggingLevel | None:
        return self._level

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        if at_least(params.level, self._level):
            await self._ctx.session.send_notification(
                types.LoggingMessageNotification(params=params),
                related_request_id=self._ctx.request_id,
            )

    async def sample(
        self, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        if not self._supports(types.ClientCapabilities(sampling=types.SamplingCapability())):
            return types.ErrorData(
                code=INVALID_REQUEST, message="the client does not support sampling"
            )
        request = types.CreateMessageRequest(params=params)
        if params.tools:
            return await self._ask(request, types.CreateMessageResultWithTools)
        return await self._ask(request, types.CreateMessageResult)

    async def elicit(
        self, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        if not self._supports(types.ClientCapabilities(elicitation=types.ElicitationCapability())):
            return types.ErrorData(
                code=INVALID_REQUEST, message="the client does not support elicitation"
            )
        return await self._ask(types.ElicitRequest(params=params), types.ElicitResult)

    def _supports(self, capability: types.ClientCapabilities) -> bool:
        return self._ctx.session.check_client_capability(capability)

    async def _ask(
        self, request: types.ServerRequest, result_type: type[_Result]
    ) -> _Result | types.ErrorData:
        try:
            return await self._ctx.session.send_request(
                request,
                result_type,
                metadata=ServerMessageMetadata(related_request_id=self._ctx.request_id),
            )
        except MCPError as exc:  # the client refused, or cannot be asked on this connection
            return exc.error
        except Exception as exc:  # e.g. an answer of the wrong shape
            return types.ErrorData(code=INTERNAL_ERROR, message=f"the client's answer: {exc}")


def _session_id(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    return request.headers.get("mcp-session-id") if isinstance(request, Request) else None


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
