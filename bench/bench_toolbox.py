"""Toolbox endpoint throughput: MCP ``tools/call`` through
``/api/projects/default/toolboxes/travel-tools/mcp`` (cupola proxying the travel example's
stdio MCP server), with the official ``mcp`` client, sequentially and concurrently.

    .venv/bin/python bench/bench_toolbox.py [--calls 300] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.server import CupolaServer  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "travel-concierge"


async def run_level(url: str, calls: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []

    async def worker(n: int) -> None:
        async with (
            streamable_http_client(url) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for _ in range(n):
                t0 = time.perf_counter()
                result = await session.call_tool("get_weather", {"city": "Tokyo"})
                latencies.append((time.perf_counter() - t0) * 1000)
                assert not result.is_error, result

    per = calls // concurrency
    started = time.perf_counter()
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies),
        "calls_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    server = CupolaServer()
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}/api/projects/default"
        tool = {
            "type": "mcp",
            "server_label": "travel",
            "command": [sys.executable, str(EXAMPLE / "mcp_server.py")],
            "require_approval": "never",
        }
        r = httpx.post(f"{base}/toolboxes/travel-tools/versions", json={"tools": [tool]})
        r.raise_for_status()
        url = f"{base}/toolboxes/travel-tools/mcp"
        asyncio.run(run_level(url, 20, 1))  # warm the pooled stdio session
        print("toolbox tools/call (get_weather), cupola -> stdio MCP server")
        for level in (int(c) for c in args.concurrency.split(",")):
            figures = asyncio.run(run_level(url, args.calls, level))
            print(
                f"  concurrency {level:>2}: {figures['calls_per_s']:7.1f} calls/s  "
                f"p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
