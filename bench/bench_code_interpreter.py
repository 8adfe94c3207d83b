"""Start-to-result time of the code interpreter for a trivial snippet.

Times ``CodeInterpreterToolset.run`` on ``print(1+1)`` from the call to the finished item:
container lookup, workdir scan, process spawn, interpreter start-up, rlimits, the snippet,
the pipe drain and the scan for changed files. For reference it also times a bare
``python -I -B -c pass`` spawned the same way, the floor any fresh-process design pays.
Target: p99 ≤ 150 ms. Run: ``.venv/bin/python bench/bench_code_interpreter.py [runs] [--check]``
(``--check`` exits 1 when the target is missed).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cupola.runtime  # noqa: F401  - imported first: cupola.tools imports the runtime
from cupola.models.base import ToolCall
from cupola.settings import CodeInterpreterSettings
from cupola.tools.base import ToolContext
from cupola.tools.code_interpreter import CodeInterpreterToolset, normalize_code_interpreter_tool

TARGET_MS = 150.0
CALL = ToolCall(call_id="call_1", name="code_interpreter", arguments='{"code": "print(1+1)"}')


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bare_python() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-B", "-c", "pass", start_new_session=True
    )
    await proc.wait()
    return time.perf_counter() - started


async def main(runs: int) -> dict[str, float]:
    tools = CodeInterpreterToolset(
        normalize_code_interpreter_tool({"type": "code_interpreter"}, "tools[0]"),
        CodeInterpreterSettings(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        ctx = ToolContext("default", "resp_bench", "conv_bench", Path(tmp))
        for _ in range(3):  # warm the page cache and the child watcher
            await tools.run(CALL, ctx)
        samples: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            item = await tools.run(CALL, ctx)
            samples.append(time.perf_counter() - started)
            assert item["status"] == "completed" and item["outputs"][0]["logs"] == "2\n", item
    floor = [await bare_python() for _ in range(runs)]
    ms = [s * 1000 for s in samples]
    floor_ms = [s * 1000 for s in floor]
    return {
        "runs": runs,
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
        "bare_python_p50_ms": statistics.median(floor_ms),
    }


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    result = asyncio.run(main(int(args[0]) if args else 50))
    print(
        f"code_interpreter print(1+1), {result['runs']} runs: "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms (bare python -I -B -c pass: "
        f"p50 {result['bare_python_p50_ms']:.1f} ms); target ≤ {TARGET_MS:.0f} ms"
    )
    if "--check" in sys.argv and result["p99_ms"] > TARGET_MS:
        sys.exit(1)
