"""Decode speed of the embedded model: ``EmbeddedModel.stream`` against xllamacpp called directly.

Both sides send llama.cpp the same request (same prompt, 128 new tokens, temperature 0) to the
same loaded server, alternating, and time tokens where the caller receives them:
decode tokens/s = (tokens - 1) / (last token time - first token time), so prompt processing
and model loading are left out. Run: ``.venv/bin/python bench/bench_embedded.py [rounds]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import orjson

from cupola.models.base import ChatMessage, Finish, ModelRequest, TextDelta
from cupola.models.embedded import EmbeddedModel, _plan
from cupola.settings import DeploymentConfig

NEW_TOKENS = 128
PROMPT = "Write a long story about a dragon who learns to fly."
REQUEST = ModelRequest(
    messages=(ChatMessage(role="user", content=PROMPT),),
    temperature=0.0,
    max_output_tokens=NEW_TOKENS,
)


def decode_rate(stamps: list[float], tokens: int) -> float:
    return (tokens - 1) / (stamps[-1] - stamps[0])


async def via_cupola(model: EmbeddedModel) -> tuple[float, int]:
    stamps: list[float] = []
    tokens = 0
    async for event in model.stream(REQUEST):
        if isinstance(event, TextDelta):
            stamps.append(time.perf_counter())
        elif isinstance(event, Finish):
            tokens = event.usage.output_tokens
    return decode_rate(stamps, tokens), tokens


def via_xllamacpp(server: Any) -> tuple[float, int]:
    """The documented direct use: a dict request and a callback receiving parsed chunks."""
    request = orjson.loads(_plan(REQUEST, NEW_TOKENS).body)
    stamps: list[float] = []
    tokens = 0

    def on_chunk(chunk: dict[str, Any]) -> bool:
        nonlocal tokens
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                stamps.append(time.perf_counter())
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        return False

    server.handle_chat_completions(request, on_chunk)
    return decode_rate(stamps, tokens), tokens


async def main(rounds: int) -> None:
    model = EmbeddedModel(DeploymentConfig(name="bench", provider="embedded"))
    started = time.perf_counter()
    await via_cupola(model)  # loads the model and warms the prompt cache
    print(f"load + first reply: {time.perf_counter() - started:.2f}s")
    server = await asyncio.to_thread(model._acquire)  # the same loaded llama.cpp server
    cupola: list[float] = []
    direct: list[float] = []
    for _ in range(rounds):
        rate, tokens = await asyncio.to_thread(via_xllamacpp, server)
        direct.append(rate)
        rate, cupola_tokens = await via_cupola(model)
        cupola.append(rate)
        assert tokens == cupola_tokens, (tokens, cupola_tokens)
    await model.aclose()
    print(f"rounds: {rounds}, tokens per reply: {tokens}; decode tokens/s, median and best:")
    for name, stat in (("median", statistics.median), ("best", max)):
        ours, theirs = stat(cupola), stat(direct)
        print(f"  {name:6} xllamacpp direct {theirs:6.1f}  cupola stream {ours:6.1f}", end="")
        print(f"  ratio {ours / theirs:6.1%}  (target >= 90%)")
    print("  direct runs:", " ".join(f"{r:.0f}" for r in direct))
    print("  cupola runs:", " ".join(f"{r:.0f}" for r in cupola))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 11))
