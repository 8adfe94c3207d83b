"""How an MCP server failed, in messages that name the server and never carry header or
env values."""

from __future__ import annotations

import logging

import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from cupola.exceptions import ToolError
from cupola.tools.mcp._session import Session, describe, leaves

logger = logging.getLogger("cupola.tools.mcp")


class McpError(ToolError):
    """An MCP server could not be used: unreachable, timed out, crashed, or it answered
    with a protocol error. ``code`` is one of ``mcp_unreachable``, ``mcp_timeout``,
    ``mcp_crashed``, ``mcp_protocol_error``, ``mcp_http_error``, ``mcp_disabled``."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        rpc_code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.rpc_code = rpc_code
        """The JSON-RPC error code, when the failure is a protocol-level one."""
        self.http_status = http_status
        """The HTTP status the server answered with, when that is the failure."""


def lost(session: Session, exc: MCPError) -> bool:
    """The error says the session is gone (not that the server refused the request)."""
    return exc.code == CONNECTION_CLOSED or session.expired


def undelivered(session: Session) -> bool:
    """The lost request cannot have run: the server forgot the session or was never
    reached. (A server that died while running it is not asked twice.)"""
    if session.expired:
        return True
    found = leaves(session.error) if session.error is not None else []
    return any(isinstance(e, httpx2.ConnectError | httpx2.ConnectTimeout) for e in found)


def connect_error(
    label: str, is_url: bool, session: Session, exc: BaseException, connect_timeout: float
) -> McpError:
    if session.http_status is not None:
        return McpError(
            f"MCP server '{label}' answered HTTP {session.http_status} ({describe(exc)})",
            code="mcp_http_error",
            http_status=session.http_status,
        )
    if isinstance(exc, TimeoutError):
        return McpError(
            f"MCP server '{label}' did not answer within {connect_timeout:g} s of connecting",
            code="mcp_timeout",
            rpc_code=REQUEST_TIMEOUT,
        )
    if is_url:
        message = f"MCP server '{label}' is unreachable: {describe(exc)}"
    elif any(isinstance(e, OSError) for e in leaves(exc)):
        message = f"MCP server '{label}' could not be started: {describe(exc)}"
    else:
        message = f"MCP server '{label}' exited during start-up: {describe(exc)}"
    return McpError(message, code="mcp_unreachable", rpc_code=CONNECTION_CLOSED)


def lost_error(label: str, is_url: bool, session: Session, what: str) -> McpError:
    if not is_url:
        message = f"MCP server '{label}' crashed while {what}"
    else:
        reason = f": {describe(session.error)}" if session.error is not None else ""
        message = f"MCP server '{label}' dropped the connection while {what}{reason}"
    return McpError(message, code="mcp_crashed", rpc_code=CONNECTION_CLOSED)


def timeout_error(label: str, timeout: float, what: str) -> McpError:
    return McpError(
        f"MCP server '{label}' timed out after {timeout:g} s while {what}",
        code="mcp_timeout",
        rpc_code=REQUEST_TIMEOUT,
    )


def protocol_error(label: str, exc: MCPError, what: str) -> McpError:
    return McpError(
        f"MCP server '{label}' returned an error while {what}: {exc.message}",
        code="mcp_protocol_error",
        rpc_code=exc.code,
    )


def invalid_answer(label: str, exc: Exception, what: str) -> McpError:
    logger.debug("MCP server %r: invalid answer while %s", label, what, exc_info=exc)
    return McpError(
        f"MCP server '{label}' gave an invalid answer while {what}: {type(exc).__name__}: {exc}",
        code="mcp_protocol_error",
    )
