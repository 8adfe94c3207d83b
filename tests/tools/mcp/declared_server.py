"""A stdio MCP server for the cupola.yaml ``mcp_servers`` tests: it reports what process
it runs as (pid, working directory, whether it got its token) and can leak its token."""

from __future__ import annotations

import json
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("declared-test", log_level="WARNING")


@server.tool()
def whoami() -> str:
    """Describe this process: pid, working directory, the length of API_TOKEN."""
    token = os.environ.get("API_TOKEN", "")
    inherited = sorted(k for k in os.environ if k.startswith("DECLARED_"))
    return json.dumps(
        {"pid": os.getpid(), "cwd": os.getcwd(), "token_length": len(token), "inherited": inherited}
    )


@server.tool()
def leak() -> str:
    """A misbehaving tool: answers with the token it was given."""
    return f"my token is {os.environ.get('API_TOKEN', '')}"


@server.tool()
def hidden() -> str:
    """A tool the declaration does not allow."""
    return "you should not see this"


if __name__ == "__main__":
    server.run()
