"""``python -m bench.bench_hooks``: what the run hooks cost per response.

In-process, no HTTP (its noise would hide a few microseconds): ``Runner.create`` of an
unstored Responses request on the scripted ``echo`` deployment, and one on ``weather-bot``
that ends in a function call, run back to back. Three variants, each in processes of its
own, in interleaved rounds so drift on a shared machine hits them alike:

- ``baseline``: a tree from before hooks (``--baseline``, e.g. ``/work/main/src``),
- ``default``: this tree as an app runs it (only the default hook, the model-call log line),
- ``all hooks``: this tree with one more hook overriding every method (each a no-op).

Times are CPU time of the process (``time.process_time``, per block of 50 pairs), so the
load of other processes on a shared machine counts little. Prints, per variant, the median
over rounds of each round's median CPU time per pair of runs,
and the best round (on a shared machine the best round is the steadier figure), each with
its ratio to the baseline.

With ``--paired``, this tree only, in one process: runners with no hooks, the default hook
and every method hooked, alternating pair by pair; the median of the paired differences is
the hooks' own cost, free of the drift between processes.

    .venv/bin/python -m bench.bench_hooks --baseline /work/main/src
    .venv/bin/python -m bench.bench_hooks --paired
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

BLOCK = 50
"""Pairs of runs per timed block (CPU time has a coarse tick)."""
HERE = Path(__file__).resolve().parents[1]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _settings() -> Any:
    from cupola.settings import Settings

    data = tempfile.mkdtemp(prefix="cupola-bench-hooks-")
    return Settings.model_validate(
        {
            "project": "default",
            "data_dir": data,
            "database_url": f"sqlite:///{data}/cupola.db",
            "default_deployment": "echo",
            "deployments": [
                {"name": "echo", "provider": "scripted", "mode": "echo"},
                {
                    "name": "weather-bot",
                    "provider": "scripted",
                    "mode": "script",
                    "script": [
                        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}
                    ],
                },
            ],
        }
    )


def _noop() -> Any:
    from cupola.runtime.hooks import RunHooks

    class Noop(RunHooks):
        async def on_run_start(self, run: Any) -> None: ...
        async def on_model_start(self, call: Any) -> None: ...
        async def on_model_end(self, call: Any, end: Any) -> None: ...
        async def on_tool_start(self, tool: Any) -> None: ...
        async def on_tool_end(self, tool: Any, item: Any) -> None: ...
        async def on_item(self, run: Any, item: Any) -> None: ...
        async def on_run_end(self, run: Any, end: Any) -> None: ...

    return Noop()


def _requests() -> list[Any]:
    from cupola.runtime.request import CreateResponse

    return [
        CreateResponse.model_validate({"model": "echo", "input": "Say hello.", "store": False}),
        CreateResponse.model_validate(
            {"model": "weather-bot", "input": "Weather?", "tools": [WEATHER], "store": False}
        ),
    ]


async def _paired(calls: int) -> None:
    """This tree only, one process: a runner with no hooks at all, one with the default hook
    and one with every method hooked, alternating pair by pair (wall time)."""
    from cupola.runtime.hooks import Hooks, ModelCallLog
    from cupola.runtime.runner import Runner
    from cupola.server.app import build_services

    s = build_services(_settings())
    await s.store.open()
    make = [
        ("no hooks", Hooks()),
        ("default", Hooks([ModelCallLog()])),
        ("all hooks", Hooks([ModelCallLog(), _noop()])),
    ]
    runners = [
        (name, Runner(s.store, s.models, s.settings.default_model, s.tools, hooks=h))
        for name, h in make
    ]
    requests = _requests()
    times: dict[str, list[float]] = {name: [] for name, _ in runners}
    for i in range(calls + 200):
        for name, runner in runners:
            started = time.perf_counter()
            for req in requests:
                await runner.create("default", req)
            if i >= 200:  # after warm-up
                times[name].append((time.perf_counter() - started) * 1000)
    await s.store.close()
    base = times["no hooks"]
    print(f"paired in one process, {calls} pairs of runs each (wall time, this tree):")
    for name, values in times.items():
        diff = statistics.median(v - b for v, b in zip(values, base, strict=True)) * 1000
        print(f"  {name:10} p50 {statistics.median(values):.3f} ms  vs no hooks {diff:+.1f} us")


async def _work(calls: int, hooked: bool) -> list[float]:
    from cupola.server.app import build_services

    settings = _settings()
    services = build_services(settings, hooks=[_noop()]) if hooked else build_services(settings)
    await services.store.open()
    requests = _requests()
    runner = services.runner
    for _ in range(200):  # warm-up
        for req in requests:
            await runner.create("default", req)
    times: list[float] = []
    gc.collect()
    for _ in range(calls // BLOCK):
        started = time.process_time()  # CPU time: other processes' load does not count
        for _ in range(BLOCK):
            for req in requests:
                body = await runner.create("default", req)
                assert body["status"] == "completed", body
        times.append((time.process_time() - started) * 1000 / BLOCK)
    await services.store.close()
    return times


def _worker(calls: int, hooked: bool) -> None:
    times = asyncio.run(_work(calls, hooked))
    sys.stdout.write(orjson.dumps(statistics.median(times)).decode())


def _round(src: str, calls: int, hooked: bool) -> float:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}"}
    args = [sys.executable, "-m", "bench.bench_hooks", "--worker", "--calls", str(calls)]
    if hooked:
        args.append("--hooked")
    out = subprocess.run(args, env=env, cwd=HERE, check=True, capture_output=True, text=True)
    median: float = orjson.loads(out.stdout)
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="src/ directory of the baseline tree")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--paired", action="store_true", help="only the in-process paired comparison"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hooked", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.calls, args.hooked)
        return 0
    if args.paired:
        asyncio.run(_paired(args.calls))
        return 0
    if not args.baseline:
        parser.error("--baseline is required (or --paired)")
    here = str(HERE / "src")
    variants = [
        ("baseline", args.baseline, False),
        ("default", here, False),
        ("all hooks", here, True),
    ]
    medians: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for r in range(args.rounds):
        for name, src, hooked in variants:
            medians[name].append(_round(src, args.calls, hooked))
        print(f"round {r + 1}: " + ", ".join(f"{n} {m[-1]:.3f} ms" for n, m in medians.items()))
    base = statistics.median(medians["baseline"])
    best = min(medians["baseline"])
    print(f"\nper pair of runs (echo + function call), of {args.rounds} rounds:")
    for name, values in medians.items():
        m, b = statistics.median(values), min(values)
        print(
            f"  {name:10} median {m:.3f} ms (ratio {m / base:.3f})"
            f"  best {b:.3f} ms (ratio {b / best:.3f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
