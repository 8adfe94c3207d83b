"""Latency cupola adds to an MCP ``tools/call``: ``McpPool.call_tool`` (warm session) against
the bare SDK ``Client.call_tool``, on the same streamable-HTTP server.

The server (the SDK's ``MCPServer`` with one ``add`` tool, under uvicorn) runs in its own
process so it does not share the client's GIL. Both clients connect first and warm up,
then take turns in blocks of 50 calls until each has made ``calls`` (default 500).
Run: ``.venv/bin/python bench/bench_mcp.py [calls]``.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

BLOCK = 50
WARMUP = 50


def serve(port: int) -> None:
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the MCP server did not start")


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _time(call: Callable[[int], Awaitable[str]], n: int, into: list[float]) -> None:
    for i in range(n):
        started = time.perf_counter()
        text = await call(i)
        into.append(time.perf_counter() - started)
        assert text == str(i + 1), text


async def run(url: str, calls: int) -> None:
    from mcp import Client
    from mcp_types import TextContent

    import cupola.runtime  # noqa: F401 - import order of the cupola package
    from cupola.settings import ToolSettings
    from cupola.tools.egress import EgressPolicy
    from cupola.tools.mcp.client import McpPool, McpServerSpec

    pool = McpPool(EgressPolicy(ToolSettings()))
    spec = McpServerSpec("bench", url=url)

    async def via_pool(i: int) -> str:
        return (await pool.call_tool(spec, "add", {"a": i, "b": 1}, timeout=10)).text

    async with Client(url) as client:

        async def bare(i: int) -> str:
            result = await client.call_tool("add", {"a": i, "b": 1})
            block = result.content[0]
            assert isinstance(block, TextContent)
            return block.text

        warm: list[float] = []
        await _time(bare, WARMUP, warm)
        await _time(via_pool, WARMUP, warm)
        direct: list[float] = []
        pooled: list[float] = []
        while len(direct) < calls:
            await _time(bare, min(BLOCK, calls - len(direct)), direct)
            await _time(via_pool, min(BLOCK, calls - len(pooled)), pooled)
    await pool.aclose()

    print(f"tools/call over streamable HTTP, {calls} calls each, warm sessions")
    for name, samples in (("bare mcp Client", direct), ("cupola McpPool", pooled)):
        print(
            f"  {name:16} p50 {_ms(samples, 0.5):.3f} ms   p99 {_ms(samples, 0.99):.3f} ms"
            f"   mean {statistics.fmean(samples) * 1000:.3f} ms"
        )
    print(
        f"  added by cupola  p50 {_ms(pooled, 0.5) - _ms(direct, 0.5):+.3f} ms   "
        f"p99 {_ms(pooled, 0.99) - _ms(direct, 0.99):+.3f} ms"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        _wait_for(port)
        asyncio.run(run(f"http://127.0.0.1:{port}/mcp", calls))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
