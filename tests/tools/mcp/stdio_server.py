"""A small MCP server built with the SDK's server API, for the MCP client tests.

Run as a script it serves its tools over stdio; ``build_server`` gives the same server
for streamable HTTP (see ``mcp_http.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ToolAnnotations


def build_server(on_headers: Callable[[dict[str, str]], None] | None = None) -> MCPServer:
    """The test server; ``on_headers`` sees the HTTP headers of every ``whoami`` call."""
    server = MCPServer("cupola-test", log_level="WARNING")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def fail() -> str:
        """Always fails."""
        raise ToolError("the tool failed on purpose")

    @server.tool()
    def reject() -> str:
        """Answers with a JSON-RPC error instead of a result."""
        raise MCPError(INVALID_PARAMS, "rejected on purpose")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        await anyio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool()
    def big(size: int) -> str:
        """A long answer of ``size`` characters."""
        return "é" * size

    @server.tool(name="math.double")
    def double(x: int) -> int:
        """A tool whose name is not a valid function name."""
        return 2 * x

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def crash() -> str:
        """End the server process abruptly."""
        os._exit(3)

    @server.tool()
    def whoami(ctx: Context, reveal: bool = False) -> str:
        """Report the request's headers to the test (HTTP only); with ``reveal``, also
        answer with the Authorization header (a server that leaks a credential)."""
        headers = dict(ctx.headers or {})
        if on_headers is not None:
            on_headers(headers)
        return f"you sent {headers.get('authorization')}" if reveal else "ok"

    return server


if __name__ == "__main__":
    build_server().run()
