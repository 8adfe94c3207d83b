"""McpPool against a real MCP server (the SDK's server API) over streamable HTTP and stdio."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import time

import pytest
from mcp import Client
from mcp_http import HttpMcpServer
from mcp_types import (
    INVALID_PARAMS,
    CreateMessageRequestParams,
    ElicitRequestParams,
    ErrorData,
    LoggingLevel,
    LoggingMessageNotificationParams,
)

from cupola.settings import ToolSettings
from cupola.tools.egress import EgressDenied, EgressPolicy
from cupola.tools.mcp import _session
from cupola.tools.mcp.client import McpError, McpPool, McpServerSpec

TOOLS = {"add", "echo", "fail", "reject", "slow", "big", "math.double", "pid", "crash", "whoami"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _until_disconnected(pool: McpPool, spec: McpServerSpec) -> None:
    for _ in range(500):
        if not pool.connected(spec):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the pool did not notice that the server went away")


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_list_and_call(
    pool: McpPool, http_spec: McpServerSpec, stdio_spec: McpServerSpec, transport: str
) -> None:
    spec = http_spec if transport == "http" else stdio_spec
    tools = {t.name: t for t in await pool.list_tools(spec)}
    assert set(tools) == TOOLS
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["add"].annotations == {"readOnlyHint": True}
    assert tools["echo"].annotations is None

    result = await pool.call_tool(spec, "add", {"a": 2, "b": 40}, timeout=5)
    assert (result.text, result.structured, result.is_error) == ("42", {"result": 42}, False)
    assert result.content == [{"type": "text", "text": "42"}]
    echoed = await pool.call_tool(spec, "echo", {"text": "héllo"}, timeout=5)
    assert echoed.text == "héllo"


async def test_http_session_is_reused(
    pool: McpPool, http_server: HttpMcpServer, http_spec: McpServerSpec
) -> None:
    stats = http_server.stats
    handshakes, connections = stats.handshakes, set(stats.connections)
    await pool.list_tools(http_spec)
    for i in range(5):
        assert (await pool.call_tool(http_spec, "add", {"a": i, "b": 1}, timeout=5)).text == str(
            i + 1
        )
    assert stats.handshakes == handshakes + 1
    assert len(stats.connections - connections) == 1
    # the same server under another label shares the session
    same = McpServerSpec("other-label", url=http_spec.url)
    await pool.call_tool(same, "add", {"a": 1, "b": 1}, timeout=5)
    assert stats.handshakes == handshakes + 1


async def test_stdio_session_is_reused(pool: McpPool, stdio_spec: McpServerSpec) -> None:
    first = await pool.call_tool(stdio_spec, "pid", {}, timeout=10)
    second = await pool.call_tool(stdio_spec, "pid", {}, timeout=5)
    assert first.text == second.text
    assert int(first.text) != os.getpid()


async def test_concurrent_calls_share_one_session(
    pool: McpPool, http_server: HttpMcpServer, http_spec: McpServerSpec
) -> None:
    handshakes = http_server.stats.handshakes
    results = await asyncio.gather(
        *(pool.call_tool(http_spec, "add", {"a": i, "b": i}, timeout=5) for i in range(20))
    )
    assert [r.text for r in results] == [str(2 * i) for i in range(20)]
    assert http_server.stats.handshakes == handshakes + 1


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_timeout_fails_within_the_timeout_and_keeps_the_session(
    pool: McpPool, http_spec: McpServerSpec, stdio_spec: McpServerSpec, transport: str
) -> None:
    spec = http_spec if transport == "http" else stdio_spec
    await pool.call_tool(spec, "add", {"a": 1, "b": 1}, timeout=10)  # connected
    started = time.monotonic()
    with pytest.raises(McpError) as caught:
        await pool.call_tool(spec, "slow", {"seconds": 5}, timeout=0.5)
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "mcp_timeout"
    assert str(caught.value) == (
        f"MCP server '{spec.label}' timed out after 0.5 s while running tool 'slow'"
    )
    assert pool.connected(spec)
    assert (await pool.call_tool(spec, "add", {"a": 1, "b": 2}, timeout=5)).text == "3"


async def test_tool_error_is_a_result(pool: McpPool, http_spec: McpServerSpec) -> None:
    result = await pool.call_tool(http_spec, "fail", {}, timeout=5)
    assert result.is_error
    assert "the tool failed on purpose" in result.text


async def test_protocol_error_is_an_mcp_error(pool: McpPool, http_spec: McpServerSpec) -> None:
    with pytest.raises(McpError) as caught:
        await pool.call_tool(http_spec, "reject", {}, timeout=5)
    assert caught.value.code == "mcp_protocol_error"
    assert caught.value.rpc_code == INVALID_PARAMS
    assert "MCP server 'web' returned an error" in str(caught.value)
    assert "rejected on purpose" in str(caught.value)
    assert pool.connected(http_spec)


async def test_stdio_server_killed_between_calls_reconnects(
    pool: McpPool, stdio_spec: McpServerSpec
) -> None:
    first = int((await pool.call_tool(stdio_spec, "pid", {}, timeout=10)).text)
    os.kill(first, signal.SIGKILL)
    await _until_disconnected(pool, stdio_spec)
    second = int((await pool.call_tool(stdio_spec, "pid", {}, timeout=10)).text)
    assert second != first


async def test_stdio_server_crashing_mid_call_fails_clearly(
    pool: McpPool, stdio_spec: McpServerSpec
) -> None:
    first = (await pool.call_tool(stdio_spec, "pid", {}, timeout=10)).text
    with pytest.raises(McpError) as caught:
        await pool.call_tool(stdio_spec, "crash", {}, timeout=10)
    assert caught.value.code == "mcp_crashed"
    assert str(caught.value) == "MCP server 'local' crashed while running tool 'crash'"
    # the next call gets a fresh server
    assert (await pool.call_tool(stdio_spec, "pid", {}, timeout=10)).text != first


async def test_stdio_server_that_cannot_start(pool: McpPool) -> None:
    missing = McpServerSpec("missing", command="/nonexistent/mcp-server")
    with pytest.raises(McpError) as caught:
        await pool.list_tools(missing)
    assert str(caught.value).startswith("MCP server 'missing' could not be started: ")
    exits = McpServerSpec("exits", command=sys.executable, args=("-c", "raise SystemExit(2)"))
    with pytest.raises(McpError) as caught:
        await pool.call_tool(exits, "add", {}, timeout=10)
    assert str(caught.value).startswith("MCP server 'exits' exited during start-up")
    assert caught.value.code == "mcp_unreachable"


async def test_unreachable_url(pool: McpPool) -> None:
    spec = McpServerSpec("gone", url=f"http://127.0.0.1:{_free_port()}/mcp")
    with pytest.raises(McpError) as caught:
        await pool.call_tool(spec, "add", {"a": 1, "b": 2}, timeout=5)
    assert caught.value.code == "mcp_unreachable"
    assert str(caught.value).startswith("MCP server 'gone' is unreachable: ConnectError")
    assert not pool.connected(spec)


async def test_http_server_restart_reconnects_then_gone_fails_clearly(pool: McpPool) -> None:
    port = _free_port()
    server = HttpMcpServer(port)
    spec = McpServerSpec("restarts", url=server.url)
    try:
        assert (await pool.call_tool(spec, "add", {"a": 1, "b": 1}, timeout=5)).text == "2"
        server.stop()
        server = HttpMcpServer(port)
        assert (await pool.call_tool(spec, "add", {"a": 2, "b": 2}, timeout=5)).text == "4"
    finally:
        server.stop()
    with pytest.raises(McpError) as caught:
        await pool.call_tool(spec, "add", {"a": 3, "b": 3}, timeout=5)
    assert caught.value.code in ("mcp_unreachable", "mcp_crashed")
    assert "MCP server 'restarts'" in str(caught.value)


async def test_legacy_session_forgotten_by_a_restarted_server_is_renewed(
    pool: McpPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2025-era server keys sessions by Mcp-Session-Id; after a restart it answers 404,
    and the call is sent again on a new session (it never ran)."""
    monkeypatch.setattr(_session, "Client", functools.partial(Client, mode="legacy"))
    port = _free_port()
    server = HttpMcpServer(port)
    spec = McpServerSpec("legacy", url=server.url)
    try:
        assert (await pool.call_tool(spec, "add", {"a": 1, "b": 1}, timeout=5)).text == "2"
        assert server.stats.methods[0] == "initialize"
        server.stop()
        server = HttpMcpServer(port)
        assert (await pool.call_tool(spec, "add", {"a": 2, "b": 2}, timeout=5)).text == "4"
        assert server.stats.methods[:3] == ["tools/call", "initialize", "notifications/initialized"]
        assert server.stats.methods.count("tools/call") == 2
    finally:
        server.stop()


async def test_egress_policy_is_checked_before_connecting(http_server: HttpMcpServer) -> None:
    pool = McpPool(EgressPolicy(ToolSettings(allow_loopback=False)))
    handshakes = http_server.stats.handshakes
    with pytest.raises(EgressDenied) as caught:
        await pool.list_tools(McpServerSpec("web", url=http_server.url))
    assert "MCP server 'web' may not call loopback address 127.0.0.1" in str(caught.value)
    with pytest.raises(EgressDenied, match="not in tools.allowed_hosts"):
        await pool.call_tool(McpServerSpec("ext", url="https://mcp.example.com/"), "x", {}, 5)
    assert http_server.stats.handshakes == handshakes
    await pool.aclose()


async def test_local_commands_can_be_disabled(stdio_spec: McpServerSpec) -> None:
    pool = McpPool(EgressPolicy(ToolSettings()), allow_commands=False)
    with pytest.raises(McpError) as caught:
        await pool.list_tools(stdio_spec)
    assert caught.value.code == "mcp_disabled"
    assert McpPool(EgressPolicy(ToolSettings(allow_loopback=False))).allow_commands is False


async def test_aclose_terminates_stdio_servers(stdio_spec: McpServerSpec) -> None:
    pool = McpPool(EgressPolicy(ToolSettings()), allow_commands=True)
    pid = int((await pool.call_tool(stdio_spec, "pid", {}, timeout=10)).text)
    await pool.aclose()
    assert not pool.connected(stdio_spec)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_spec_key_hides_secrets_and_ignores_label() -> None:
    a = McpServerSpec("a", url="http://h/mcp", headers={"Authorization": "Bearer sekrit"})
    b = McpServerSpec("b", url="http://h/mcp", headers={"Authorization": "Bearer sekrit"})
    c = McpServerSpec("a", url="http://h/mcp", headers={"Authorization": "Bearer other"})
    assert a.key == b.key != c.key
    assert "sekrit" not in a.key and "sekrit" not in repr(a)
    d = McpServerSpec("d", command="srv", args=("--x",), env={"TOKEN": "sekrit"})
    assert d.key.startswith("stdio:") and "sekrit" not in d.key + repr(d)
    with pytest.raises(ValueError):
        McpServerSpec("e")


class _Relay:
    """A caller that wants nothing relayed (the relay tests drive the real thing)."""

    log_level: LoggingLevel | None = None

    async def log(self, params: LoggingMessageNotificationParams) -> None:
        raise AssertionError("no log messages were asked for")

    async def sample(self, params: CreateMessageRequestParams) -> ErrorData:
        raise AssertionError("not asked")

    async def elicit(self, params: ElicitRequestParams) -> ErrorData:
        raise AssertionError("not asked")


async def test_relayed_calls_get_a_session_of_their_own_kept_warm(
    pool: McpPool, stdio_spec: McpServerSpec
) -> None:
    """A call whose server may ask its caller things runs on a session serving no other
    call; the next relayed call reuses it, and concurrent ones each get their own."""
    relay = _Relay()
    shared = (await pool.call_tool(stdio_spec, "pid", {}, timeout=10)).text
    first = (await pool.call_tool(stdio_spec, "pid", {}, timeout=10, relay=relay)).text
    again = (await pool.call_tool(stdio_spec, "pid", {}, timeout=10, relay=relay)).text
    assert first == again != shared
    together = await asyncio.gather(
        *(pool.call_tool(stdio_spec, "pid", {}, timeout=10, relay=relay) for _ in range(3))
    )
    assert len({r.text for r in together}) == 3
    assert first in {r.text for r in together}  # the warm one served one of them
    assert (await pool.call_tool(stdio_spec, "pid", {}, timeout=5)).text == shared
