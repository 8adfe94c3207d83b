"""The ``mcp`` tool: an MCP server's tools offered to the model, each call an ``mcp_call``.

Items follow the Responses API (``openai`` SDK types ``McpListTools``, ``McpCall``,
``McpApprovalRequest``). A failed call carries an ``error`` object in the SDK's
``McpToolCallError`` shape: ``mcp_tool_execution_error`` (the tool said ``isError``),
``mcp_protocol_error`` (the server could not be used or answered a JSON-RPC error) or
``http_error`` (an HTTP status, or an egress refusal). Credentials (header values, from the
entry, a cupola.yaml declaration or a project connection) never appear in items, errors or
logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_PARAMS

from cupola.domain.records import Item
from cupola.exceptions import CupolaError, ToolError
from cupola.ids import new_id
from cupola.models.base import FunctionSpec, ToolCall
from cupola.tools.base import Rendered, SecretResolver, ToolContext, Toolset
from cupola.tools.egress import EgressDenied
from cupola.tools.mcp.client import McpError, McpPool, McpServerSpec, McpTool
from cupola.tools.mcp.config import is_allowed, needs_approval, normalize_mcp_tool

__all__ = ["McpToolset", "function_name", "normalize_mcp_tool", "render_mcp_call"]

logger = logging.getLogger("cupola.tools.mcp")

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_CREDENTIAL = re.compile(r"(?i)auth|token|key|secret|cookie|password|credential")
"""Header names whose values are credentials (scrubbed from what the server answers)."""
_MIN_SECRET = 4
"""Shorter credential values are not scrubbed from text (they would mangle it)."""


def function_name(tool_name: str) -> str:
    """The name the model calls an MCP tool by: function names allow only letters, digits,
    '_' and '-' (up to 64), MCP tool names also '.' and '/' (up to 128)."""
    return _UNSAFE.sub("_", tool_name)[:64]


def _cap(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[:limit].decode(errors="ignore")
    return f"{kept}\n[output truncated: {len(data)} bytes, the first {limit} shown]"


def _arguments(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The call's arguments as an object, or the protocol error that says why not."""
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        problem = f"the arguments are not valid JSON ({exc})"
    else:
        if isinstance(value, dict):
            return value, None
        problem = "the arguments must be a JSON object"
    return {}, {"type": "mcp_protocol_error", "code": INVALID_PARAMS, "message": problem}


def _secret_values(headers: dict[str, str]) -> list[str]:
    """The strings to scrub: each header value and, for ``Scheme token``, the token."""
    values = set(headers.values())
    values |= {v.split(" ", 1)[1] for v in headers.values() if " " in v}
    return sorted((v for v in values if len(v.strip()) >= _MIN_SECRET), key=len, reverse=True)


def _error_text(error: Any) -> str:
    """The readable text of an ``mcp_call`` error (an SDK error object, or a string)."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            return str(error["message"])
        content = error.get("content")
        if isinstance(content, list):
            texts = [b.get("text") for b in content if isinstance(b, dict)]
            return "\n".join(t for t in texts if isinstance(t, str)) or json.dumps(content)
    return json.dumps(error)


def render_mcp_call(item: Item) -> Rendered | None:
    """How a finished ``mcp_call`` reads in history: a call of the tool, and its output
    (or ``error: ...``)."""
    name = item.get("name")
    if not isinstance(name, str) or not isinstance(item.get("id"), str):
        return None
    call = ToolCall(item["id"], function_name(name), item.get("arguments") or "{}")
    if item.get("error") is not None:
        return Rendered(call, f"error: {_error_text(item['error'])}")
    if item.get("output") is not None:
        return Rendered(call, str(item["output"]))
    return Rendered(call, f"error: the call did not finish (status {item.get('status')})")


class McpToolset(Toolset):
    """One ``mcp`` tool entry (normalized by :func:`normalize_mcp_tool`) for one response."""

    def __init__(
        self,
        tool: dict[str, Any],
        pool: McpPool,
        secrets: SecretResolver | None,
        project: str,
    ) -> None:
        self.tool = tool
        self.label: str = tool["server_label"]
        self._pool = pool
        self._secrets = secrets
        self._project = project
        self._spec: McpServerSpec | None = None
        self._secret_values: list[str] = []
        self._tools: dict[str, McpTool] = {}
        self._aliases: dict[str, str] = {}
        """Function name -> MCP tool name (they differ when the tool's name has '.' or '/')."""
        self._listed = False

    # -- Toolset ---------------------------------------------------------------------

    async def start(self, ctx: ToolContext) -> list[Item]:
        """List the server's tools; the ``mcp_list_tools`` item the first time this
        conversation meets the server (or whenever listing fails)."""
        error: str | None = None
        try:
            listed = await self._pool.list_tools(
                await self._server(), self.tool.get("timeout_seconds")
            )
        except CupolaError as exc:  # the pool turns every failure of the server into one
            listed, error = [], self._failure(exc)
            logger.info("MCP server %r: listing tools failed: %s", self.label, error)
        self._tools = {t.name: t for t in listed if is_allowed(self.tool, t.name, t.annotations)}
        self._aliases = {}
        for name in self._tools:
            self._aliases.setdefault(function_name(name), name)
        self._listed = error is None
        if error is None and self._seen(ctx.history):
            return []
        return [
            {
                "id": new_id("mcpl"),
                "type": "mcp_list_tools",
                "server_label": self.label,
                "tools": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "input_schema": t.input_schema,
                        "annotations": t.annotations,
                    }
                    for t in self._tools.values()
                ],
                "error": error,
            }
        ]

    def functions(self) -> list[FunctionSpec]:
        """One function per allowed tool, named by :func:`function_name`."""
        specs = []
        for alias, name in self._aliases.items():
            tool = self._tools[name]
            specs.append(FunctionSpec(alias, tool.description, tool.input_schema))
        return specs

    def requires_approval(self, call: ToolCall) -> bool:
        call = self._tool_call(call)
        tool = self._tools.get(call.name)
        return needs_approval(self.tool, call.name, tool.annotations if tool else None)

    def approval_request(self, call: ToolCall) -> Item:
        call = self._tool_call(call)
        return {
            "id": new_id("mcpr"),
            "type": "mcp_approval_request",
            "server_label": self.label,
            "name": call.name,
            "arguments": call.arguments,
        }

    async def run(
        self,
        call: ToolCall,
        ctx: ToolContext,
        approval_request_id: str | None = None,
        **extra: Any,
    ) -> Item:
        """Run a call (by function or tool name); the ``mcp_call`` item, failed or not."""
        call = self._tool_call(call)
        item: Item = {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "server_label": self.label,
            "name": call.name,
            "arguments": call.arguments,
            "output": None,
            "error": None,
            "status": "completed",
            "approval_request_id": approval_request_id,
        }
        arguments, error = _arguments(call.arguments)
        error = error or self._refusal(call)
        if error is not None:
            return self._failed(item, error)
        settings = self._pool.settings
        try:
            result = await self._pool.call_tool(
                await self._server(),
                call.name,
                arguments,
                self.tool.get("timeout_seconds") or settings.timeout_seconds,
                progress=extra.get("progress"),
                relay=extra.get("relay"),
            )
        except CupolaError as exc:  # the pool turns every failure of the server into one
            return self._failed(item, self._error_object(exc))
        on_result = extra.get("on_result")
        if on_result is not None:  # the toolbox endpoint passes the server's content through
            on_result(result)
        if result.is_error:
            content = json.loads(self._scrub(json.dumps(result.content)))
            return self._failed(item, {"type": "mcp_tool_execution_error", "content": content})
        item["output"] = self._scrub(_cap(result.text, settings.max_response_bytes))
        return item

    # -- helpers ---------------------------------------------------------------------

    async def _server(self) -> McpServerSpec:
        """The server's spec, with headers resolved from the project connection."""
        if self._spec is not None:
            return self._spec
        tool = self.tool
        if tool.get("command"):
            command = tool["command"]
            program = sys.executable if command[0] in ("python", "python3") else command[0]
            self._spec = McpServerSpec(
                self.label,
                command=program,
                args=tuple(command[1:]),
                env=tool.get("env"),
                cwd=tool.get("cwd"),
                connect_timeout=tool.get("startup_timeout_seconds"),
            )
            env = tool.get("env") or {}
            self._secret_values = _secret_values(
                {k: v for k, v in env.items() if _CREDENTIAL.search(k)}
            )
            return self._spec
        headers = dict(tool.get("headers") or {})
        if tool.get("authorization"):
            headers["Authorization"] = f"Bearer {tool['authorization']}"
        self._secret_values = _secret_values(
            {k: v for k, v in headers.items() if _CREDENTIAL.search(k)}
        )
        connection = tool.get("project_connection_id")
        if connection:
            if self._secrets is None:
                raise ToolError(
                    f"MCP server '{self.label}' names project connection {connection!r}, "
                    "but this server has no connections",
                    code="mcp_connection",
                )
            try:
                resolved = await self._secrets.headers_for(self._project, connection)
            except CupolaError:
                raise
            except Exception as exc:  # a broken secret store (database, decryption): say so,
                # show nothing of it
                raise ToolError(
                    f"MCP server '{self.label}' could not use connection {connection!r}: "
                    f"the secret store failed ({type(exc).__name__})",
                    code="mcp_connection",
                ) from None
            headers.update(resolved)
            self._secret_values = _secret_values(
                {**resolved, **{k: v for k, v in headers.items() if _CREDENTIAL.search(k)}}
            )
        self._spec = McpServerSpec(
            self.label,
            url=tool["server_url"],
            headers=headers,
            connect_timeout=tool.get("startup_timeout_seconds"),
        )
        return self._spec

    def _tool_call(self, call: ToolCall) -> ToolCall:
        """The call under the MCP tool's own name."""
        name = self._aliases.get(call.name, call.name)
        return call if name == call.name else ToolCall(call.call_id, name, call.arguments)

    def _seen(self, history: list[Item]) -> bool:
        return any(
            item.get("type") == "mcp_list_tools"
            and item.get("server_label") == self.label
            and not item.get("error")
            for item in history
        )

    def _refusal(self, call: ToolCall) -> dict[str, Any] | None:
        """Why this call may not run at all (a tool not offered), or None."""
        tool = self._tools.get(call.name)
        offered = tool is not None if self._listed else True
        allowed = is_allowed(self.tool, call.name, tool.annotations if tool else None)
        if offered and allowed:
            return None
        return {
            "type": "mcp_protocol_error",
            "code": INVALID_PARAMS,
            "message": f"tool '{call.name}' is not offered by MCP server '{self.label}'",
        }

    def _scrub(self, text: str) -> str:
        for secret in self._secret_values:
            text = text.replace(secret, "***")
        return text

    def _failure(self, exc: CupolaError) -> str:
        return self._scrub(exc.message)

    def _error_object(self, exc: CupolaError) -> dict[str, Any]:
        message = self._failure(exc)
        if isinstance(exc, McpError) and exc.http_status is not None:
            return {"type": "http_error", "code": exc.http_status, "message": message}
        if isinstance(exc, EgressDenied):
            return {"type": "http_error", "code": exc.status_code, "message": message}
        if isinstance(exc, McpError):
            code = exc.rpc_code if exc.rpc_code is not None else CONNECTION_CLOSED
        else:
            code = INTERNAL_ERROR
        return {"type": "mcp_protocol_error", "code": code, "message": message}

    def _failed(self, item: Item, error: dict[str, Any]) -> Item:
        logger.info("MCP call %r on %r failed: %s", item["name"], self.label, _error_text(error))
        item["error"] = error
        item["status"] = "failed"
        return item
