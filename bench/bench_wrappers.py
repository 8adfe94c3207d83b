"""Overhead of the model wrappers per call: compat + resilience around the scripted model.

The same request is run to completion (:func:`cupola.models.base.complete`) through the bare
``ScriptedModel`` and through the chain the registry builds for a deployment,
``ResilientModel(CompatModel(ScriptedModel))``, alternating call by call so both see the same
machine state. The request has parameters a reasoning deployment drops and translates
(temperature, stop, max_output_tokens), so compat does real work and reports it, and the
deployment has a circuit breaker. Prints p50/p99 of both and of the difference per call;
the target is a difference of at most 0.1 ms at p50.

    .venv/bin/python -m bench.bench_wrappers [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time

from cupola.models.base import ChatMessage, Model, ModelRequest, complete
from cupola.models.compat import CompatModel
from cupola.models.resilience import CircuitBreaker, ResilientModel, Target
from cupola.models.testing import ScriptedModel, ScriptedStep

TARGET_MS = 0.1
REQUEST = ModelRequest(
    messages=(
        ChatMessage("system", "You are a concise assistant."),
        ChatMessage("user", "Say hello."),
    ),
    temperature=0.2,
    stop=("\n\n",),
    max_output_tokens=200,
)


def wrapped(inner: Model) -> Model:
    compat = CompatModel(inner, family="reasoning", developer_role=True)
    breaker = CircuitBreaker(inner.name, failures=5, reset_seconds=30)
    return ResilientModel(inner.name, Target(inner.name, compat, timeout=120, breaker=breaker))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(calls: int) -> dict[str, list[float]]:
    bare = ScriptedModel("bench", mode="script", script=[ScriptedStep(reply="Hello there!")])
    chain = wrapped(bare)
    for _ in range(500):  # warm-up
        await complete(bare, REQUEST)
        await complete(chain, REQUEST)
    result = await complete(chain, REQUEST)
    assert [a.param for a in result.finish.report.adjustments] == [
        "temperature",
        "stop",
        "max_output_tokens",
        "messages",
    ]
    times: dict[str, list[float]] = {"bare": [], "wrapped": [], "diff": []}
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            order = (bare, chain) if i % 2 == 0 else (chain, bare)
            spent = {}
            for model in order:
                start = clock()
                await complete(model, REQUEST)
                spent[model is chain] = (clock() - start) / 1e6
            times["bare"].append(spent[False])
            times["wrapped"].append(spent[True])
            times["diff"].append(spent[True] - spent[False])
            if i % 1000 == 999:
                gc.collect()
    finally:
        gc.enable()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_wrappers")
    parser.add_argument("--calls", type=int, default=20000, help="calls of each model")
    args = parser.parse_args(argv)
    times = asyncio.run(measure(args.calls))
    print(f"{args.calls} calls each, ms per call (complete() of a 2-word scripted reply)")
    print(f"{'':<34} {'p50':>8} {'p99':>8} {'mean':>8}")
    labels = {
        "bare": "ScriptedModel",
        "wrapped": "Resilient(Compat(ScriptedModel))",
        "diff": "overhead (paired difference)",
    }
    for key, label in labels.items():
        values = times[key]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"{label:<34} {p50:>8.4f} {p99:>8.4f} {statistics.fmean(values):>8.4f}")
    overhead = percentile(times["wrapped"], 0.5) - percentile(times["bare"], 0.5)
    paired = percentile(times["diff"], 0.5)
    met = paired <= TARGET_MS
    print(
        f"p50 wrapped - p50 bare = {overhead:.4f} ms; paired p50 {paired:.4f} ms; "
        f"target <= {TARGET_MS} ms: {'MET' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
