"""Where a request's time goes: py-spy samples ``cupola serve`` while the load generator runs.

    .venv/bin/pip install py-spy          # once; it is not a cupola dependency
    .venv/bin/python -m bench.profile --workload stored --concurrency 16 --duration 10

Samples only the thread holding the GIL (``--gil``), so the shares below are shares of the
one core Python can use. Writes the folded stacks to ``bench/results/profile-<workload>.txt``
(feed them to any flamegraph tool) and prints the hottest functions, self and inclusive,
and the time per package and per thread.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.http_load import LoadResult, build_request, run_load
from bench.server import VARIANTS, CupolaServer

RESULTS = Path(__file__).resolve().parent / "results"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_PACKAGES = (
    ("cupola/store", "cupola.store"),
    ("cupola/runtime", "cupola.runtime"),
    ("cupola/server", "cupola.server"),
    ("cupola/models", "cupola.models"),
    ("cupola/", "cupola (other)"),
    ("sqlalchemy/", "sqlalchemy"),
    ("sqlite3/", "sqlite3 (C driver)"),
    ("pydantic", "pydantic"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn"),
    ("anyio/", "anyio (threads)"),
    ("asyncio/", "asyncio"),
    ("threading.py", "threading"),
    ("concurrent/", "threading"),
    ("json", "json"),
)


def workload(name: str, port: int) -> bytes:
    body = {"model": "echo", "input": "Hello, benchmark! Please echo this sentence back."}
    if name == "healthz":
        return build_request("GET", "/healthz", port=port)
    if name == "unstored":
        body["store"] = False
    elif name == "stream":
        body["stream"] = True
    return build_request("POST", "/v1/responses", body, port=port)


def package_of(frame: str) -> str:
    match = _FRAME.match(frame)
    path = match.group("file") if match else frame
    for needle, name in _PACKAGES:
        if needle in path:
            return name
    return path.split("/")[0] or frame


def short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match.group('func')} ({match.group('file')})"


def read_folded(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], top: int, ms_per_sample: float) -> str:
    """Tables of the samples; ``ms_per_sample`` turns a sample count into ms per request."""
    total = sum(n for _, n in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for frames, n in stacks:
        if frames[0].startswith("thread ("):
            # "thread (tid): name": the event loop runs on MainThread, store calls on workers
            threads[frames[0].partition(": ")[2] or "?"] += n
            frames = frames[1:]
        if not frames:
            frames = ["<no Python frame>"]
        own[short(frames[-1])] += n
        packages[package_of(frames[-1])] += n
        for name in {short(f) for f in frames}:
            inclusive[name] += n
    lines = [f"samples: {total}, {total * ms_per_sample:.3f} ms per request in all"]

    def table(title: str, counts: Counter[str], limit: int) -> None:
        lines.append(f"\n{title}  (share, ms per request)")
        for name, n in counts.most_common(limit):
            lines.append(f"  {100 * n / total:5.1f}%  {n * ms_per_sample:6.3f}  {name}")

    table("by thread", threads, 4)
    table("self time by package", packages, 15)
    table(f"top {top} functions, self time", own, top)
    table(f"top {top} functions, inclusive", inclusive, top)
    ours = Counter(
        {k: v for k, v in inclusive.items() if "(cupola/" in k and "(cupola/cli/" not in k}
    )
    table(f"top {top} cupola functions, inclusive", ours, top)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "--workload", default="stored", choices=["stored", "unstored", "healthz", "stream"]
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--variant", default="auto", choices=list(VARIANTS))
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--native", action="store_true", help="include C frames (slower)")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every running thread, not only the one holding the GIL",
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"profile-{args.workload}-c{args.concurrency}.txt"
    with CupolaServer(VARIANTS[args.variant]) as server:
        request = workload(args.workload, server.port)
        run_load(server.port, request, label="warm-up", concurrency=args.concurrency, duration=1)
        command = [
            spy,
            "record",
            "--pid",
            str(server.pid),
            "--duration",
            str(int(args.duration)),
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--function",
            "--threads",
            "--nonblocking",
            "--output",
            str(out),
        ]
        if args.native:
            command.append("--native")
        if not args.all_threads:
            command.append("--gil")
        result: list[LoadResult] = []

        def drive() -> None:
            time.sleep(0.3)  # let py-spy attach
            result.append(
                run_load(
                    server.port,
                    request,
                    label=args.workload,
                    concurrency=args.concurrency,
                    duration=args.duration - 0.6,
                    warmup=0,
                    server_pid=server.pid,
                )
            )

        driver = threading.Thread(target=drive)
        driver.start()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        driver.join()
    load = result[0]
    print(
        f"{args.workload} c={args.concurrency}: {load.rps:.0f} req/s, p50 {load.p50_ms:.2f} ms, "
        f"p99 {load.p99_ms:.2f} ms, server CPU {load.server_cpu_ms_per_request} ms/req "
        f"({load.requests} requests under the profiler)"
    )
    # the GIL is idle outside the load, so every sample belongs to one of its requests
    ms_per_sample = 1000 / args.rate / max(load.requests, 1)
    print(summarise(read_folded(out), args.top, ms_per_sample))
    print(f"\nfolded stacks: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
