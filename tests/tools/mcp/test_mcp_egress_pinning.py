"""MCP over HTTP connects only to addresses the egress policy checked: a listed host name
that resolves to loopback is refused when loopback is off, and reached at exactly the
checked address when it is on."""

from __future__ import annotations

import pytest
from mcp_http import HttpMcpServer

from cupola.settings import ToolSettings
from cupola.tools.egress import EgressDenied, EgressPolicy
from cupola.tools.mcp.client import McpError, McpPool, McpServerSpec

NAME = "mcp.tools.example"
"""A listed name that exists in no DNS: only the policy's resolver knows it."""


class Resolver:
    """A DNS that answers ``NAME`` with loopback and counts the questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host != NAME:
            raise OSError(f"unknown host {host}")
        return ["127.0.0.1"]


async def test_a_listed_name_resolving_to_loopback_is_refused(http_server: HttpMcpServer) -> None:
    dns = Resolver()
    policy = EgressPolicy(ToolSettings(allow_loopback=False, allowed_hosts=[NAME]), resolver=dns)
    pool = McpPool(policy)
    spec = McpServerSpec("rebound", url=http_server.url.replace("127.0.0.1", NAME))
    handshakes = http_server.stats.handshakes
    try:
        with pytest.raises((EgressDenied, McpError)) as caught:
            await pool.list_tools(spec, timeout=5)
        assert "resolves to the loopback address 127.0.0.1" in str(caught.value)
        assert dns.asked and set(dns.asked) == {NAME}
        assert http_server.stats.handshakes == handshakes  # nothing reached the server
    finally:
        await pool.aclose()


async def test_the_connection_goes_to_the_checked_address(http_server: HttpMcpServer) -> None:
    """The name resolves (once per connection) to 127.0.0.1, the only address the test
    server listens on, and the request arrives there under the name. (The MCP SDK's server
    then refuses the unknown Host with 421: its own DNS-rebinding protection.)"""
    dns = Resolver()
    policy = EgressPolicy(ToolSettings(allow_loopback=True, allowed_hosts=[NAME]), resolver=dns)
    pool = McpPool(policy)
    spec = McpServerSpec("named", url=http_server.url.replace("127.0.0.1", NAME))
    connections = len(http_server.stats.connections)
    requests = len(http_server.stats.headers)
    try:
        with pytest.raises(McpError) as caught:
            await pool.call_tool(spec, "add", {"a": 2, "b": 3}, timeout=10)
        assert caught.value.http_status == 421
        arrived = http_server.stats.headers[requests:]
        assert arrived and arrived[0]["host"] == f"{NAME}:{http_server.port}"
        # one DNS answer per TCP connection: checked, then connected to as it was
        assert len(dns.asked) == len(http_server.stats.connections) - connections >= 1
    finally:
        await pool.aclose()
