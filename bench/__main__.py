"""``python -m bench``: HTTP server benchmarks against the scripted ``echo`` model.

Cold start of ``cupola serve``, non-streaming ``POST /v1/responses`` (stored) at several
concurrency levels (closed loop) and at a fixed offered rate (open loop), time to the first
SSE event, plus diagnostic rows (``/healthz``, an unstored response) that show how much of a
request is framework and how much is storage. Prints a table, checks the targets, and writes
``bench/results/<name>.json``. Each run waits (``--quiet-wait``) for the machine to be idle
and reports other processes' CPU, since a 2-core box shared with other work skews figures.

    .venv/bin/python -m bench                       # everything, as `cupola serve` runs
    .venv/bin/python -m bench --variants all        # also asyncio/h11 loop and parser variants
    .venv/bin/python -m bench --only load --levels 16 --duration 10
    .venv/bin/python -m bench.profile --workload stored   # py-spy: where the time goes
    .venv/bin/python -m bench --only upstream        # server CPU per call to an openai upstream
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench.bench_clients import client_loads, client_streams, client_targets
from bench.bench_upstream import DEFAULT_BASELINE, baseline_src, upstream_table
from bench.bench_upstream import run as run_upstream
from bench.http_load import (
    HOST,
    LoadResult,
    StreamResult,
    build_request,
    run_load,
    run_stream,
    wait_until_quiet,
)
from bench.server import VARIANTS, CupolaServer, Variant, cold_starts, native_modules

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "Hello, benchmark! Please echo this sentence back."
SECTIONS = ("cold", "load", "diag", "stream", "clients", "upstream")
NOISY_PCT = 20.0
"""Rows where other processes used more CPU than this (% of a core) are marked with '!'."""


def _versions() -> dict[str, str]:
    out = {}
    for name in ("cupola", "uvicorn", "starlette", "uvloop", "httptools", "sqlalchemy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def _post(port: int, **extra: Any) -> bytes:
    return build_request(
        "POST", "/v1/responses", {"model": "echo", "input": PROMPT, **extra}, port=port
    )


def bench_variant(variant: Variant, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh server: load levels, diagnostics and streaming."""
    out: dict[str, Any] = {"load": [], "diagnostics": [], "stream": None}
    with CupolaServer(variant) as server:
        out["cold_start_s"] = round(server.cold_start_s or 0.0, 3)
        out["native"] = native_modules(server.pid)
        port, pid = server.port, server.pid

        def load(
            label: str, request: bytes, concurrency: int, rate: float | None = None
        ) -> LoadResult:
            if args.quiet_wait:
                waited, busy = wait_until_quiet(args.quiet_wait)
                if busy >= 0.15:
                    print(f"  (machine still busy: {busy:.2f} cores after {waited:.0f} s)")
            result = run_load(
                port,
                request,
                label=label,
                concurrency=concurrency,
                duration=args.duration,
                warmup=args.warmup,
                server_pid=pid,
                rate=rate,
            )
            print(_row(variant.name, result), flush=True)
            return result

        if "load" in args.only:
            for level in args.levels:
                result = load("POST /responses stored", _post(port), level)
                out["load"].append(result.as_dict())
            if args.rate:
                label = f"POST stored @{args.rate:g}/s open"
                result = load(label, _post(port), args.rate_concurrency, args.rate)
                out["open_loop"] = result.as_dict()
        if "diag" in args.only:
            health = build_request("GET", "/healthz", port=port)
            for level in args.diag_levels:
                out["diagnostics"].append(load("GET /healthz", health, level).as_dict())
                unstored = _post(port, store=False)
                out["diagnostics"].append(
                    load("POST /responses store=false", unstored, level).as_dict()
                )
        if "stream" in args.only:
            if args.quiet_wait:
                wait_until_quiet(args.quiet_wait)
            stream = run_stream(
                port,
                _post(port, stream=True),
                label="POST /responses stream=true",
                count=args.stream_requests,
            )
            print(_stream_row(variant.name, stream), flush=True)
            out["stream"] = stream.as_dict()
        if "clients" in args.only:  # /v1/chat/completions and /anthropic/v1/messages
            levels = [level for level in args.levels if level in (1, 16)] or [1, 16]
            out["clients"] = [r.as_dict() for r in client_loads(port, load, levels)]
            out["client_streams"] = client_streams(port, args.stream_requests)
    return out


HEADER = (
    f"{'variant':<18} {'workload':<28} {'conc':>4} {'req/s':>8} {'p50':>7} {'p90':>7} "
    f"{'p99':>7} {'max':>7} {'err':>4} {'srvCPU%':>7} {'ms/req':>6} {'sys':>5} {'cliCPU%':>7} "
    f"{'other%':>7}"
)


LEGEND = (
    "latencies in ms; srvCPU% = server process (all threads) in % of one core; ms/req = its "
    "CPU per request,\nsys = the kernel's part; cliCPU% = this load generator; other% = "
    f"everything else on the machine ('!' above {NOISY_PCT:g}%: noisy).\n"
    "'@N/s open' = open loop, N requests/s on a fixed schedule; other rows are closed loop."
)


def _row(variant: str, r: LoadResult) -> str:
    cpu = "-" if r.server_cpu_pct is None else f"{r.server_cpu_pct:.0f}"
    per = "-" if r.server_cpu_ms_per_request is None else f"{r.server_cpu_ms_per_request:.2f}"
    sys_ms = "-" if r.server_sys_ms_per_request is None else f"{r.server_sys_ms_per_request:.2f}"
    other = "-" if r.other_cpu_pct is None else f"{r.other_cpu_pct:.0f}"
    if r.other_cpu_pct is not None and r.other_cpu_pct > NOISY_PCT:
        other += "!"
    return (
        f"{variant:<18} {r.label:<28} {r.concurrency:>4} {r.rps:>8.1f} {r.p50_ms:>7.2f} "
        f"{r.p90_ms:>7.2f} {r.p99_ms:>7.2f} {r.max_ms:>7.1f} {r.errors:>4} {cpu:>7} {per:>6} "
        f"{sys_ms:>5} {r.client_cpu_pct:>7.0f} {other:>7}"
    )


def _stream_row(variant: str, s: StreamResult) -> str:
    return (
        f"{variant:<18} {s.label:<28} {1:>4} {'':>8} first SSE event p50 {s.first_event_p50_ms:.2f}"
        f" p99 {s.first_event_p99_ms:.2f} | response.completed p50 {s.completed_p50_ms:.2f}"
        f" p99 {s.completed_p99_ms:.2f} ms | {s.events_per_response:.0f} events, "
        f"{s.requests} reqs, err {s.errors}"
    )


def _load_at(results: dict[str, Any], level: int) -> dict[str, Any] | None:
    return next((r for r in results.get("load", []) if r["concurrency"] == level), None)


def targets(cold: dict[str, Any] | None, auto: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The targets, judged on what ``cupola serve`` runs (the ``auto`` variant)."""
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, limit: float, at_most: bool, unit: str) -> None:
        met = None if value is None else (value <= limit if at_most else value >= limit)
        checks.append(
            {
                "target": name,
                "value": value,
                "limit": f"{'<=' if at_most else '>='} {limit} {unit}",
                "met": met,
            }
        )

    c1 = _load_at(auto or {}, 1)
    c16 = _load_at(auto or {}, 16)
    opened = (auto or {}).get("open_loop")
    check("p50 at concurrency 1", c1 and c1["p50_ms"], 2.0, True, "ms")
    check("req/s at concurrency 16", c16 and c16["rps"], 300.0, False, "req/s")
    check("p99 at c16, closed loop", c16 and c16["p99_ms"], 15.0, True, "ms")
    if opened:
        rate = f"{opened['offered_rps']:g}/s"
        check(f"p99 at c{opened['concurrency']}, {rate} open", opened["p99_ms"], 15.0, True, "ms")
    check("cold start (median of runs)", cold and cold["median_s"], 2.0, True, "s")
    runs = [*(auto or {}).get("load", []), *([opened] if opened else [])]
    errors = sum(r["errors"] for r in runs)
    stream = (auto or {}).get("stream")
    errors += stream["errors"] if stream else 0
    check("errors (auto variant)", errors if auto else None, 0, True, "")
    checks += client_targets((auto or {}).get("clients", []))
    return checks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="http", help="results file: bench/results/<name>.json")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per level")
    parser.add_argument("--levels", default="1,16,64", help="concurrency levels (stored POST)")
    parser.add_argument(
        "--rate", type=float, default=300.0, help="open-loop rate (req/s); 0 to skip"
    )
    parser.add_argument("--rate-concurrency", type=int, default=16, help="connections at --rate")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many s for other processes to go idle",
    )
    parser.add_argument("--diag-levels", default="1,16", help="levels for the diagnostic rows")
    parser.add_argument(
        "--stream-requests", type=int, default=200, help="sequential streaming requests"
    )
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh processes to time")
    parser.add_argument(
        "--variants",
        default="auto",
        help=f"comma-separated, or 'all': {', '.join(VARIANTS)} (auto = what cupola serve picks)",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"subset of {SECTIONS}")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=DEFAULT_BASELINE,
        help="upstream section: src directory of the tree to compare with ('none' to skip)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x]
    args.diag_levels = [int(x) for x in args.diag_levels.split(",") if x]
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(unknown)}")
    args.variants = [VARIANTS[n] for n in names]
    args.only = set(args.only.split(","))
    if args.only - set(SECTIONS):
        parser.error(f"--only takes {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "meta": {
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": HOST,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": _versions(),
            "args": {
                k: sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
                if k != "variants"
            },
            "variants": [v.name for v in args.variants],
        },
        "cold_start": None,
        "variants": {},
    }
    if "cold" in args.only:
        cold = cold_starts(args.cold_starts, quiet_wait=args.quiet_wait)
        results["cold_start"] = cold
        runs = ", ".join(f"{t:.3f}" for t in cold["runs_s"])
        print(f"cold start (Popen -> first 200 on /healthz): median {cold['median_s']:.3f} s")
        print(f"  runs: {runs} s")
    if args.only & {"load", "diag", "stream", "clients"}:
        print(HEADER)
        for variant in args.variants:
            results["variants"][variant.name] = bench_variant(variant, args)
        print(LEGEND)
    checks = targets(results["cold_start"], results["variants"].get("auto"))
    if "upstream" in args.only:  # server CPU per chat completion through an openai deployment
        print("\nupstream: /v1/chat/completions through an openai deployment, vs the baseline")
        upstream = run_upstream(
            baseline_src(args.baseline),
            rounds=5,
            duration=args.duration / 2,
            warmup=args.warmup / 2,
            quiet_wait=args.quiet_wait / 3,
        )
        print(upstream_table(upstream))
        results["upstream"] = upstream
        checks.append(upstream["target"])
    results["targets"] = checks
    print("\ntargets (cupola serve as shipped = auto variant):")
    for c in checks:
        verdict = {True: "MET", False: "MISSED", None: "not run"}[c["met"]]
        print(f"  {c['target']:<30} {str(c['value']):>10}  {c['limit']:<14} {verdict}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {path}")
    missed = any(c["met"] is False for c in checks)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
