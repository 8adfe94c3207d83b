"""The tool-use set's 30 first-turn requests straight through the embedded adapter, in process.

No server and no HTTP: an :class:`~cupola.models.embedded.EmbeddedModel` (one thread, as
``bench_tooluse --threads 1``) is asked each question of ``bench/tooluse/cases.yaml`` with the
four tools, as the Responses API would ask it (the instructions as a system message,
temperature 0, 96 tokens). Quicker than ``bench_tooluse`` (the model loads once, the
follow-up turns are skipped), so it is the loop to try a change of ``models/small.py`` on;
``bench_tooluse`` gives the figures. The replies are the same on every repeat; the seconds
depend on the machine's load.

Run: ``PYTHONPATH=src .venv/bin/python -m bench.bench_tooluse_direct``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import yaml

from bench.bench_tooluse import CASES, function_tools
from cupola.models.base import (
    ChatMessage,
    FunctionSpec,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
)
from cupola.models.embedded import EmbeddedModel
from cupola.settings import DeploymentConfig


async def _ask(
    model: EmbeddedModel, spec: dict[str, Any], question: str
) -> tuple[str | None, str, str, float]:
    tools = tuple(
        FunctionSpec(t["name"], t["description"], t["parameters"], True)
        for t in function_tools(spec)
    )
    messages = (ChatMessage("system", spec["instructions"]), ChatMessage("user", question))
    request = ModelRequest(messages, tools=tools, temperature=0, max_output_tokens=96)
    name, arguments, text = None, "", ""
    started = time.perf_counter()
    async for event in model.stream(request):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, ToolCallDelta):
            name, arguments = event.name or name, arguments + event.arguments
    return name, arguments, text, time.perf_counter() - started


async def main() -> None:
    spec = yaml.safe_load(CASES.read_text())
    params = {t["name"]: t["parameter"] for t in spec["tools"]}
    model = EmbeddedModel(DeploymentConfig(name="local-small", provider="embedded", threads=1))
    right = exact = quiet = 0
    seconds: list[float] = []
    try:
        for case in spec["tool_cases"]:
            name, arguments, text, took = await _ask(model, spec, case["question"])
            ok = name == case["tool"]
            value = json.loads(arguments).get(params[case["tool"]]) if ok else None
            same = ok and str(value).strip().lower() == str(case["argument"]).lower()
            right, exact = right + ok, exact + same
            seconds.append(took)
            got = f"{name}({arguments})" if name else f"text {text[:50]!r}"
            mark = ("ok " if ok else "BAD") + (" exact" if same else "      ")
            print(f"tool    {mark} {took:5.1f}s  {case['question'][:44]:44}  {got}", flush=True)
        for question in spec["no_tool_cases"]:
            name, arguments, text, took = await _ask(model, spec, question)
            ok = name is None and bool(text.strip())
            quiet += ok
            seconds.append(took)
            got = f"{name}({arguments})" if name else f"text {text[:50]!r}"
            print(f"no_tool {'ok ' if ok else 'BAD'}       {took:5.1f}s  {question[:44]:44}  {got}")
    finally:
        await model.aclose()
    print(
        f"right tool {right}/20, exact argument {exact}/20, no tool {quiet}/10, "
        f"median {statistics.median(seconds):.2f}s per request"
    )


if __name__ == "__main__":
    asyncio.run(main())
