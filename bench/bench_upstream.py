"""Server CPU per ``POST /v1/chat/completions`` through an ``openai`` deployment, side by side
with a baseline tree, against a zero-latency mock upstream in its own process.

Two ``cupola serve`` processes run at once, one on this tree's code and one on the baseline's
(``--baseline``, a checkout's ``src`` directory: ``git worktree add /tmp/baseline-upstream
4aad759`` gives today's), both with the same cupola.yaml: an ``openai`` deployment ``up`` whose
``base_url`` is the mock (``bench/mock_upstream.py``), and the scripted ``echo`` deployment as
the floor (no upstream call at all). Each round drives every workload on both servers in
turn with the low-CPU keep-alive load generator; the figure is the server process's CPU time
(all threads, from /proc) divided by the requests it answered. Medians over the rounds are
compared, and the ratio is current / baseline. The mock counts the TCP connections it
accepts, so the table also says how many new upstream connections each request cost.

    .venv/bin/python -m bench.bench_upstream [--rounds 5] [--duration 3]
    .venv/bin/python -m bench --only upstream      # the same, inside the main bench
    .venv/bin/python -m bench.bench_upstream --profile   # py-spy: where this tree's CPU goes
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.http_load import HOST, LoadResult, build_request, run_load, wait_until_quiet
from bench.profile import read_folded, summarise
from bench.server import CupolaServer, free_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_BASELINE = Path("/tmp/baseline-upstream/src")
TARGET_MS = 2.0
"""Server CPU per chat completion through the ``openai`` deployment, at most (ms)."""
PROMPT = "Hello, benchmark! Please echo this sentence back."
CONFIG = """\
project: default
server:
  host: 127.0.0.1
deployments:
  - name: up
    provider: openai
    model: mock-model
    base_url: http://127.0.0.1:{port}/v1
    api_key: sk-bench-not-a-secret
  - name: echo
    provider: scripted
    mode: echo
"""
WORKLOADS: dict[str, tuple[str, bool, int]] = {
    "chat -> openai (up)": ("up", False, 1),
    "chat -> openai stream": ("up", True, 1),
    "chat -> openai, c16": ("up", False, 16),
    "chat -> echo (floor)": ("echo", False, 1),
}
"""Label -> (deployment, stream, concurrency)."""
HEADLINE = "chat -> openai (up)"


class MockUpstream:
    """``bench/mock_upstream.py`` in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MockUpstream:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.mock_upstream", "--port", str(self.port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.stats()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the mock upstream did not start") from None
                time.sleep(0.02)

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def stats(self) -> dict[str, int]:
        """Connections accepted so far, open now, and requests answered."""
        with socket.create_connection((HOST, self.port), timeout=2) as sock:
            sock.sendall(b"GET /stats HTTP/1.1\r\nHost: mock\r\n\r\n")
            data = b""
            while b"}" not in data:
                more = sock.recv(4096)
                if not more:
                    break
                data += more
        stats: dict[str, int] = orjson.loads(data.split(b"\r\n\r\n", 1)[1])
        return stats


class TreeServer(CupolaServer):
    """``cupola serve`` on the code of one tree (its ``src`` on PYTHONPATH)."""

    def __init__(self, name: str, src: Path, upstream_port: int) -> None:
        super().__init__()
        self.name = name
        self.src = src
        self.config.write_text(CONFIG.format(port=upstream_port))

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = str(self.src)
        return env


@dataclass
class Row:
    """One workload on one tree: a figure per round."""

    cpu_ms: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    new_connections: list[float] = field(default_factory=list)
    """Upstream connections the mock accepted, per request."""
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        def median(values: list[float]) -> float | None:
            return round(statistics.median(values), 3) if values else None

        return {
            "cpu_ms_per_request": median(self.cpu_ms),
            "cpu_ms_rounds": self.cpu_ms,
            "p50_ms": median(self.p50_ms),
            "rps": median(self.rps),
            "upstream_connections_per_request": median(self.new_connections),
            "errors": self.errors,
        }


def _request(port: int, deployment: str, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": deployment,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream"] = True
    return build_request("POST", "/v1/chat/completions", body, port=port)


def run(
    baseline: Path | None, *, rounds: int, duration: float, warmup: float, quiet_wait: float
) -> dict[str, Any]:
    """Every workload on each tree, ``rounds`` times, interleaved; medians and ratios."""
    trees = {"current": REPO / "src"}
    if baseline is not None:
        trees = {"baseline": baseline, **trees}
    rows: dict[str, dict[str, Row]] = {w: {t: Row() for t in trees} for w in WORKLOADS}
    with MockUpstream() as mock:
        servers = [TreeServer(name, src, mock.port) for name, src in trees.items()]
        try:
            for server in servers:
                server.start()
            for number in range(rounds):
                for label, (deployment, stream, concurrency) in WORKLOADS.items():
                    # the trees take turns going first: neither is always measured second
                    for server in servers if number % 2 == 0 else servers[::-1]:
                        if quiet_wait:
                            wait_until_quiet(quiet_wait)
                        before = mock.stats()
                        result = run_load(
                            server.port,
                            _request(server.port, deployment, stream),
                            label=label,
                            concurrency=concurrency,
                            duration=duration,
                            warmup=warmup,
                            server_pid=server.pid,
                        )
                        after = mock.stats()
                        row = rows[label][server.name]
                        row.errors += result.errors
                        if result.server_cpu_ms_per_request is not None:
                            row.cpu_ms.append(result.server_cpu_ms_per_request)
                        row.p50_ms.append(result.p50_ms)
                        row.rps.append(result.rps)
                        answered = after["requests"] - before["requests"]
                        if answered:
                            opened = after["connections"] - before["connections"]
                            row.new_connections.append(round(opened / answered, 3))
                        print(
                            f"round {number + 1}/{rounds}  {server.name:<8} {label:<24} "
                            f"c{concurrency:<3} {result.server_cpu_ms_per_request} ms CPU/req  "
                            f"p50 {result.p50_ms:.2f} ms  {result.rps:.0f} req/s  "
                            f"err {result.errors}",
                            flush=True,
                        )
        finally:
            for server in servers:
                server.cleanup()
    out: dict[str, Any] = {"trees": {k: str(v) for k, v in trees.items()}, "workloads": {}}
    for label, by_tree in rows.items():
        entry = {tree: row.summary() for tree, row in by_tree.items()}
        now, then = entry["current"]["cpu_ms_per_request"], None
        if "baseline" in entry:
            then = entry["baseline"]["cpu_ms_per_request"]
        entry["ratio"] = round(now / then, 3) if now and then else None
        out["workloads"][label] = entry
    headline = out["workloads"][HEADLINE]["current"]["cpu_ms_per_request"]
    errors = sum(row.errors for by_tree in rows.values() for row in by_tree.values())
    out["target"] = {
        "target": "server CPU per chat completion via openai",
        "value": headline,
        "limit": f"<= {TARGET_MS} ms",
        "met": None if headline is None else headline <= TARGET_MS and errors == 0,
    }
    return out


def upstream_table(result: dict[str, Any]) -> str:
    lines = [
        f"{'workload':<26} {'tree':<9} {'CPU ms/req':>10} {'p50 ms':>7} {'req/s':>7} "
        f"{'conn/req':>8} {'err':>4}"
    ]
    for label, entry in result["workloads"].items():
        for tree in ("baseline", "current"):
            if tree not in entry:
                continue
            s = entry[tree]
            conn = s["upstream_connections_per_request"]
            lines.append(
                f"{label:<26} {tree:<9} {s['cpu_ms_per_request']!s:>10} {s['p50_ms']!s:>7} "
                f"{s['rps']!s:>7} {'-' if conn is None else conn:>8} {s['errors']:>4}"
            )
        if entry.get("ratio") is not None:
            lines.append(f"{'':<26} {'ratio':<9} {entry['ratio']:>10}  (current / baseline)")
    lines.append(
        "CPU ms/req = the server process's CPU time (all threads) / requests answered, median "
        "of the rounds;\nconn/req = TCP connections the mock upstream accepted per request."
    )
    return "\n".join(lines)


def profile(duration: float, rate: int = 500, top: int = 30) -> int:
    """py-spy samples this tree's server (the thread holding the GIL) while the headline
    workload runs; prints the hottest functions as ``bench.profile`` does."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "profile-upstream.txt"
    deployment, stream, concurrency = WORKLOADS[HEADLINE]
    loads: list[LoadResult] = []
    with MockUpstream() as mock, TreeServer("current", REPO / "src", mock.port) as server:
        request = _request(server.port, deployment, stream)
        run_load(server.port, request, label="warm-up", concurrency=concurrency, duration=1)

        def drive() -> None:
            time.sleep(0.3)  # let py-spy attach
            loads.append(
                run_load(
                    server.port,
                    request,
                    label=HEADLINE,
                    concurrency=concurrency,
                    duration=duration - 0.6,
                    warmup=0,
                    server_pid=server.pid,
                )
            )

        driver = threading.Thread(target=drive)
        driver.start()
        command = [str(spy), "record", "--pid", str(server.pid), "--duration", str(int(duration))]
        command += ["--rate", str(rate), "--format", "raw", "--function", "--threads"]
        command += ["--nonblocking", "--gil", "--output", str(out)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        driver.join()
    load = loads[0]
    print(
        f"{HEADLINE}: {load.rps:.0f} req/s, server CPU {load.server_cpu_ms_per_request} ms/req "
        f"({load.requests} requests under the profiler)"
    )
    print(summarise(read_folded(out), top, 1000 / rate / max(load.requests, 1)))
    print(f"\nfolded stacks: {out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_upstream", description=__doc__)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=DEFAULT_BASELINE,
        help="src directory of the tree to compare with ('none' to skip)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="measured s per workload")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--quiet-wait", type=float, default=10.0)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy this tree's server instead (Linux)"
    )
    return parser.parse_args(argv)


def baseline_src(path: Path | None) -> Path | None:
    """The baseline's ``src``, or None (with a note) when there is none to compare with."""
    if path is None or str(path) == "none":
        return None
    if not (path / "cupola").is_dir():
        print(
            f"no baseline at {path}: `git worktree add {path.parent} 4aad759` makes one; "
            "measuring this tree alone",
            file=sys.stderr,
        )
        return None
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/stat").exists():  # the CPU figures come from /proc
        print("this benchmark reads /proc: Linux only", file=sys.stderr)
        return 2
    if args.profile:
        return profile(max(args.duration, 5.0))
    result = run(
        baseline_src(args.baseline),
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        quiet_wait=args.quiet_wait,
    )
    print()
    print(upstream_table(result))
    t = result["target"]
    verdict = {True: "MET", False: "MISSED", None: "not run"}[t["met"]]
    print(f"\ntarget: {t['target']} {t['value']} ms {t['limit']}: {verdict}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "upstream.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"wrote {path}")
    return 1 if args.check and t["met"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
