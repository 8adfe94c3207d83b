"""A load generator that costs the server as little CPU as possible.

Raw asyncio streams on uvloop (when installed), one persistent HTTP/1.1 keep-alive connection
per concurrent worker, the request pre-encoded once, and responses parsed only as far as the
status code, ``Content-Length`` or chunked framing. Loopback only. Latency is measured per
request with ``time.perf_counter_ns`` from writing the request to reading its last byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

HOST = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def build_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    port: int,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The complete request, encoded once and written as-is for every iteration."""
    payload = b"" if body is None else orjson.dumps(body)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: */*"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class ResponseReader:
    """Reads one HTTP/1.1 response at a time from a keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def head(self) -> tuple[int, bytes]:
        """The status code and the lower-cased header block."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        return int(head[9:12]), head.lower()

    async def body(self, head: bytes, on_chunk: Callable[[bytes], None] | None = None) -> int:
        """Consume the body framed as ``head`` says; return its size. ``on_chunk`` sees each
        piece as it arrives (used to time SSE events)."""
        start = head.find(b"\r\ncontent-length:")
        if start >= 0:
            end = head.index(b"\r\n", start + 2)
            size = int(head[start + 17 : end])
            data = await self.reader.readexactly(size)
            if on_chunk is not None:
                on_chunk(data)
            return size
        if b"\r\ntransfer-encoding: chunked" not in head:
            raise ValueError("response has neither Content-Length nor chunked encoding")
        total = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return total
            total += size
            if on_chunk is not None:
                on_chunk(chunk[:-2])


def wants_close(head: bytes) -> bool:
    return b"\r\nconnection: close" in head


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def process_cpu_seconds(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process and all its threads, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def wait_until_quiet(
    max_wait: float, busy_cores: float = 0.15, sample: float = 0.5
) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until the machine's busy CPU over ``sample`` s is under
    ``busy_cores`` cores: other people's work skews a benchmark. Returns (waited s, busy)."""
    start = time.monotonic()
    busy = 0.0
    while True:
        before = system_cpu_seconds()
        time.sleep(sample)
        after = system_cpu_seconds()
        if before is None or after is None:
            return 0.0, 0.0
        busy = (after[0] - before[0]) / sample
        waited = time.monotonic() - start
        if busy < busy_cores or waited >= max_wait:
            return waited, busy


def system_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat", "rb") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    total = sum(ticks[:8])
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


@dataclass
class LoadResult:
    label: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    client_cpu_pct: float = 0.0
    """CPU the load generator used, as a share of one core."""
    server_cpu_pct: float | None = None
    """CPU the server process used (all its threads), as a share of one core."""
    server_cpu_ms_per_request: float | None = None
    server_sys_ms_per_request: float | None = None
    """The part of ``server_cpu_ms_per_request`` spent in the kernel."""
    other_cpu_pct: float | None = None
    """CPU used by everything else on the machine meanwhile (noise), share of one core."""
    offered_rps: float | None = None
    """Open loop: the rate requests were sent at (None: closed loop, as fast as answered)."""
    late_sends: int = 0
    """Open loop: sends more than 1 ms behind schedule (the server did not keep up)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    last_done_ns: int = 0
    late: int = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text)


async def _connect(port: int) -> tuple[ResponseReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
    return ResponseReader(reader), writer


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


@dataclass
class _Window:
    """CPU counters at the start of the measured window."""

    client: float = 0.0
    server: tuple[float, float] | None = None
    system: tuple[float, float] | None = None


class _LoadRun:
    """Workers on keep-alive connections, a warm-up, then a measured window."""

    def __init__(
        self,
        port: int,
        request: bytes,
        concurrency: int,
        duration: float,
        warmup: float,
        max_requests: int | None,
        rate: float | None,
    ) -> None:
        self.port, self.request, self.concurrency = port, request, concurrency
        self.tally = _Tally()
        self.begin = time.perf_counter_ns()
        self.measure_from = self.begin + int(warmup * 1e9)
        self.stop_at = self.measure_from + int(duration * 1e9)
        self.budget = max_requests
        # Open loop: each worker sends every `interval` ns on a fixed schedule, the workers
        # staggered so that the sends are evenly spaced (`rate` requests/s in all).
        self.interval = int(concurrency / rate * 1e9) if rate else 0

    def _take(self, t0: int) -> bool | None:
        """Whether a request sent at ``t0`` is measured; None when the run is over."""
        if t0 >= self.stop_at:
            return None
        if t0 < self.measure_from:
            return False
        if self.budget is not None:
            if self.budget <= 0:
                return None
            self.budget -= 1
        return True

    async def _pace(self, scheduled: int) -> None:
        delay = scheduled - time.perf_counter_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        elif -delay > 1_000_000 and scheduled >= self.measure_from:
            self.tally.late += 1

    def _record(self, measured: bool, status: int, t0: int, t1: int) -> None:
        if not measured:
            return
        self.tally.latencies_ns.append(t1 - t0)
        self.tally.statuses[status] += 1
        self.tally.last_done_ns = t1
        if status != 200:
            self.tally.error(f"HTTP {status}")

    async def worker(self, index: int) -> None:
        reader, writer = await _connect(self.port)
        scheduled = self.begin + index * self.interval // self.concurrency
        try:
            while True:
                if self.interval:
                    scheduled += self.interval
                    await self._pace(scheduled)
                t0 = time.perf_counter_ns()
                measured = self._take(t0)
                if measured is None:
                    return
                writer.write(self.request)
                try:
                    status, head = await reader.head()
                    await reader.body(head)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    if measured:
                        self.tally.error(f"{type(exc).__name__}: {exc}")
                    await _close(writer)
                    reader, writer = await _connect(self.port)
                    continue
                self._record(measured, status, t0, time.perf_counter_ns())
                if wants_close(head):
                    await _close(writer)
                    reader, writer = await _connect(self.port)
        finally:
            await _close(writer)

    async def run(self, server_pid: int | None) -> tuple[_Tally, float, dict[str, float | None]]:
        window = _Window()

        async def mark() -> None:
            await asyncio.sleep(max(0.0, (self.measure_from - time.perf_counter_ns()) / 1e9))
            window.client = time.process_time()
            window.server = process_cpu_seconds(server_pid) if server_pid else None
            window.system = system_cpu_seconds()

        marker = asyncio.ensure_future(mark())
        await asyncio.gather(*(self.worker(i) for i in range(self.concurrency)))
        await marker
        cpu: dict[str, float | None] = {"client": time.process_time() - window.client}
        after = process_cpu_seconds(server_pid) if server_pid else None
        cpu["server"] = cpu["server_sys"] = None
        if after is not None and window.server is not None:
            cpu["server"] = sum(after) - sum(window.server)
            cpu["server_sys"] = after[1] - window.server[1]
        system = system_cpu_seconds()
        cpu["other"] = None
        if window.system and system and cpu["server"] is not None:
            busy = system[0] - window.system[0]
            cpu["other"] = max(0.0, busy - cpu["server"] - (cpu["client"] or 0.0))
        elapsed = max(self.tally.last_done_ns - self.measure_from, 1) / 1e9
        return self.tally, elapsed, cpu


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when it is installed: the cheapest loop leaves most CPU to the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def run_load(
    port: int,
    request: bytes,
    *,
    label: str,
    concurrency: int,
    duration: float = 5.0,
    warmup: float = 1.0,
    max_requests: int | None = None,
    server_pid: int | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Warm up for ``warmup`` seconds, then measure for ``duration`` seconds (or until
    ``max_requests`` measured requests, whichever comes first).

    Closed loop by default: each of the ``concurrency`` workers sends its next request as
    soon as the previous one is answered. With ``rate``, open loop: requests go out on a
    fixed schedule of ``rate`` per second spread over the workers."""
    load = _LoadRun(port, request, concurrency, duration, warmup, max_requests, rate)
    tally, elapsed, cpu = run_async(load.run(server_pid))
    client_cpu, server_cpu, other_cpu = cpu["client"] or 0.0, cpu["server"], cpu["other"]
    server_sys = cpu["server_sys"]
    lat = sorted(ns / 1e6 for ns in tally.latencies_ns)
    done = len(lat)
    return LoadResult(
        label=label,
        concurrency=concurrency,
        requests=done,
        errors=tally.errors,
        seconds=round(elapsed, 3),
        rps=round(done / elapsed, 1),
        p50_ms=round(percentile(lat, 50), 3),
        p90_ms=round(percentile(lat, 90), 3),
        p99_ms=round(percentile(lat, 99), 3),
        max_ms=round(lat[-1] if lat else 0.0, 3),
        mean_ms=round(sum(lat) / done if done else 0.0, 3),
        statuses={str(k): v for k, v in sorted(tally.statuses.items())},
        error_samples=tally.error_samples,
        client_cpu_pct=round(100 * client_cpu / elapsed, 1),
        server_cpu_pct=None if server_cpu is None else round(100 * server_cpu / elapsed, 1),
        server_cpu_ms_per_request=(
            None if server_cpu is None or not done else round(1000 * server_cpu / done, 3)
        ),
        server_sys_ms_per_request=(
            None if server_sys is None or not done else round(1000 * server_sys / done, 3)
        ),
        other_cpu_pct=None if other_cpu is None else round(100 * other_cpu / elapsed, 1),
        offered_rps=rate,
        late_sends=tally.late,
    )


@dataclass
class StreamResult:
    label: str
    requests: int
    errors: int
    events_per_response: float
    first_event_p50_ms: float
    first_event_p99_ms: float
    completed_p50_ms: float
    completed_p99_ms: float
    end_p50_ms: float
    """To the terminating chunk (the connection is free again)."""
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _stream(port: int, request: bytes, count: int, warmup: int) -> dict[str, Any]:
    first: list[float] = []
    completed: list[float] = []
    ends: list[float] = []
    events: list[int] = []
    tally = _Tally()
    reader, writer = await _connect(port)
    try:
        for i in range(warmup + count):
            seen: dict[str, int] = {"first": 0, "completed": 0, "events": 0}

            def on_chunk(data: bytes, seen: dict[str, int] = seen) -> None:
                now = time.perf_counter_ns()
                n = data.count(b"event:")
                if n and not seen["first"]:
                    seen["first"] = now
                seen["events"] += n
                if not seen["completed"] and b"event: response.completed\n" in data:
                    seen["completed"] = now

            t0 = time.perf_counter_ns()
            writer.write(request)
            try:
                status, head = await reader.head()
                await reader.body(head, on_chunk)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                tally.error(f"{type(exc).__name__}: {exc}")
                await _close(writer)
                reader, writer = await _connect(port)
                continue
            t1 = time.perf_counter_ns()
            if i < warmup:
                continue
            if status != 200 or not seen["completed"]:
                tally.error(f"HTTP {status}" if status != 200 else "no response.completed")
                continue
            first.append((seen["first"] - t0) / 1e6)
            completed.append((seen["completed"] - t0) / 1e6)
            ends.append((t1 - t0) / 1e6)
            events.append(seen["events"])
            if wants_close(head):
                await _close(writer)
                reader, writer = await _connect(port)
    finally:
        await _close(writer)
    return {
        "first": sorted(first),
        "completed": sorted(completed),
        "ends": sorted(ends),
        "events": events,
        "tally": tally,
    }


def run_stream(
    port: int, request: bytes, *, label: str, count: int = 200, warmup: int = 20
) -> StreamResult:
    """``count`` sequential streaming requests on one keep-alive connection: time to the
    first ``event:`` line and to ``event: response.completed``."""
    out = run_async(_stream(port, request, count, warmup))
    tally: _Tally = out["tally"]
    events: list[int] = out["events"]
    return StreamResult(
        label=label,
        requests=len(out["first"]),
        errors=tally.errors,
        events_per_response=round(sum(events) / len(events), 1) if events else 0.0,
        first_event_p50_ms=round(percentile(out["first"], 50), 3),
        first_event_p99_ms=round(percentile(out["first"], 99), 3),
        completed_p50_ms=round(percentile(out["completed"], 50), 3),
        completed_p99_ms=round(percentile(out["completed"], 99), 3),
        end_p50_ms=round(percentile(out["ends"], 50), 3),
        error_samples=tally.error_samples,
    )


def side_by_side(
    servers: Sequence[Any],
    levels: list[int],
    rounds: int,
    *,
    duration: float,
    warmup: float,
    path: str = "/v1/responses",
    body: dict[str, Any] | None = None,
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Load every started server (``name``, ``port``, ``pid``) with the same POST, level by
    level for ``rounds`` rounds, rotating which goes first each round so that no server is
    always measured on the warmest (or the busiest) machine. Returns each (name, level)'s
    results in round order."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    width = max(len(server.name) for server in servers)
    for round_ in range(rounds):
        for level in levels:
            shift = round_ % len(servers)
            for server in [*servers[shift:], *servers[:shift]]:
                request = build_request("POST", path, body or {}, port=server.port)
                result = run_load(
                    server.port,
                    request,
                    label=server.name,
                    concurrency=level,
                    duration=duration,
                    warmup=warmup,
                    server_pid=server.pid,
                )
                assert result.errors == 0, result.error_samples
                runs.setdefault((server.name, level), []).append(result.as_dict())
                print(
                    f"round {round_ + 1} c={level:<3} {server.name:<{width}} "
                    f"{result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms",
                    flush=True,
                )
    return runs
