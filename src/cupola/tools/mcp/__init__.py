"""MCP tools: a pool of warm MCP client sessions and the ``mcp`` toolset built on it."""

from cupola.tools.mcp.client import McpError, McpPool, McpResult, McpServerSpec, McpTool
from cupola.tools.mcp.config import normalize_mcp_tool
from cupola.tools.mcp.toolset import McpToolset, render_mcp_call

__all__ = [
    "McpError",
    "McpPool",
    "McpResult",
    "McpServerSpec",
    "McpTool",
    "McpToolset",
    "normalize_mcp_tool",
    "render_mcp_call",
]
