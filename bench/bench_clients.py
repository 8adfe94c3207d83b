"""Client endpoints: ``POST /v1/chat/completions`` and ``POST /anthropic/v1/messages``
(non-streaming, nothing stored) against the scripted ``echo`` deployment, measured as the
Responses bench measures ``POST /v1/responses``: ``cupola serve`` in its own process, the
low-CPU keep-alive load generator, closed loop at concurrency 1 and 16, plus the time to the
first streamed chunk. Same targets: p50 <= 2 ms at c1, >= 300 req/s at c16.

    .venv/bin/python bench/bench_clients.py [--duration 5] [--levels 1,16]
    .venv/bin/python -m bench --only clients      # the same rows inside the main bench
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.http_load import (  # noqa: E402
    HOST,
    LoadResult,
    ResponseReader,
    build_request,
    percentile,
    run_async,
    run_load,
    wait_until_quiet,
)
from bench.server import CupolaServer  # noqa: E402

PROMPT = "Hello, benchmark! Please echo this sentence back."
RESULTS = Path(__file__).resolve().parent / "results"
Load = Callable[[str, bytes, int], LoadResult]
"""Runs one closed-loop level: (label, request, concurrency) -> result."""


def requests(port: int, *, stream: bool = False) -> dict[str, bytes]:
    """The pre-encoded request of each client endpoint, by label."""
    chat = {"model": "echo", "messages": [{"role": "user", "content": PROMPT}]}
    messages = {"model": "echo", "max_tokens": 256, "messages": chat["messages"]}
    if stream:
        chat, messages = {**chat, "stream": True}, {**messages, "stream": True}
    return {
        "POST /chat/completions": build_request("POST", "/v1/chat/completions", chat, port=port),
        "POST /anthropic messages": build_request(
            "POST",
            "/anthropic/v1/messages",
            messages,
            port=port,
            headers={"anthropic-version": "2023-06-01"},
        ),
    }


def client_loads(port: int, load: Load, levels: list[int]) -> list[LoadResult]:
    """Each client endpoint at each concurrency level."""
    return [
        load(label, request, level) for label, request in requests(port).items() for level in levels
    ]


async def _time_streams(port: int, request: bytes, count: int, warmup: int) -> dict[str, Any]:
    """Sequential streamed requests on one keep-alive connection: ms to the first SSE
    ``data:`` line and to the end of the body."""
    raw_reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
    reader = ResponseReader(raw_reader)
    first: list[float] = []
    ends: list[float] = []
    errors = 0
    try:
        for i in range(warmup + count):
            seen: list[int] = []

            def on_chunk(data: bytes, seen: list[int] = seen) -> None:
                if not seen and b"data: " in data:
                    seen.append(time.perf_counter_ns())

            t0 = time.perf_counter_ns()
            writer.write(request)
            status, head = await reader.head()
            await reader.body(head, on_chunk)
            t1 = time.perf_counter_ns()
            if i < warmup:
                continue
            if status != 200 or not seen:
                errors += 1
                continue
            first.append((seen[0] - t0) / 1e6)
            ends.append((t1 - t0) / 1e6)
    finally:
        writer.close()
    first.sort()
    ends.sort()
    return {
        "requests": len(first),
        "errors": errors,
        "first_event_p50_ms": round(percentile(first, 50), 3),
        "first_event_p99_ms": round(percentile(first, 99), 3),
        "end_p50_ms": round(percentile(ends, 50), 3),
        "end_p99_ms": round(percentile(ends, 99), 3),
    }


def client_streams(port: int, count: int, warmup: int = 20) -> list[dict[str, Any]]:
    """Each client endpoint streamed: time to the first chunk and to the whole reply."""
    return [
        {"label": f"{label} stream", **run_async(_time_streams(port, request, count, warmup))}
        for label, request in requests(port, stream=True).items()
    ]


def client_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses endpoint's targets, judged for each client endpoint."""
    checks = []
    for label in requests(0):
        for level, key, limit, at_most, unit in (
            (1, "p50_ms", 2.0, True, "ms"),
            (16, "rps", 300.0, False, "req/s"),
        ):
            row = next((r for r in rows if r["label"] == label and r["concurrency"] == level), None)
            value = row[key] if row else None
            met = None if value is None else (value <= limit if at_most else value >= limit)
            short = label.removeprefix("POST /")
            name = f"{short} {'p50 at c1' if level == 1 else 'req/s at c16'}"
            sign = "<=" if at_most else ">="
            checks.append(
                {"target": name, "value": value, "limit": f"{sign} {limit} {unit}", "met": met}
            )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per level")
    parser.add_argument("--levels", default="1,16", help="concurrency levels")
    parser.add_argument("--streams", type=int, default=200, help="sequential streamed requests")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="wait for an idle box")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x]
    with CupolaServer() as server:

        def load(label: str, request: bytes, concurrency: int) -> LoadResult:
            if args.quiet_wait:
                wait_until_quiet(args.quiet_wait)
            result = run_load(
                server.port,
                request,
                label=label,
                concurrency=concurrency,
                duration=args.duration,
                warmup=args.warmup,
                server_pid=server.pid,
            )
            cpu = result.server_cpu_ms_per_request
            print(
                f"{label:<28} c{concurrency:<3} {result.rps:>8.1f} req/s  p50 {result.p50_ms:6.2f}"
                f"  p99 {result.p99_ms:6.2f} ms  err {result.errors}"
                f"  server {'-' if cpu is None else f'{cpu:.2f}'} ms CPU/req",
                flush=True,
            )
            return result

        rows = [r.as_dict() for r in client_loads(server.port, load, levels)]
        streams = client_streams(server.port, args.streams)
    for s in streams:
        print(
            f"{s['label']:<35} first chunk p50 {s['first_event_p50_ms']:.2f} ms, whole stream "
            f"p50 {s['end_p50_ms']:.2f} ms, err {s['errors']}"
        )
    checks = client_targets(rows)
    print("\ntargets:")
    for c in checks:
        verdict = {True: "MET", False: "MISSED", None: "not run"}[c["met"]]
        print(f"  {c['target']:<44} {str(c['value']):>10}  {c['limit']:<14} {verdict}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "clients.json"
    path.write_bytes(
        orjson.dumps(
            {"load": rows, "stream": streams, "targets": checks}, option=orjson.OPT_INDENT_2
        )
    )
    print(f"\nwrote {path}")
    errors = sum(r["errors"] for r in rows) + sum(s["errors"] for s in streams)
    missed = any(c["met"] is False for c in checks) or errors > 0
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
