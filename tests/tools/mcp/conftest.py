"""Fixtures for the MCP tests: the test server over streamable HTTP and over stdio, and a
pool of MCP sessions closed after each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from mcp_http import STDIO_SERVER, HttpMcpServer

from cupola.settings import ToolSettings
from cupola.tools.egress import EgressPolicy
from cupola.tools.mcp.client import McpPool, McpServerSpec


@pytest.fixture(scope="session")
def http_server() -> Iterator[HttpMcpServer]:
    server = HttpMcpServer()
    yield server
    server.stop()


@pytest.fixture
async def pool() -> AsyncIterator[McpPool]:
    pool = McpPool(
        EgressPolicy(ToolSettings(timeout_seconds=10, allow_loopback=True)), allow_commands=True
    )
    yield pool
    await pool.aclose()


@pytest.fixture
def http_spec(http_server: HttpMcpServer) -> McpServerSpec:
    return McpServerSpec("web", url=http_server.url)


@pytest.fixture
def stdio_spec() -> McpServerSpec:
    return McpServerSpec("local", command=sys.executable, args=(STDIO_SERVER,))
