"""A stateless run as the Anthropic Messages API answers it: a ``message``, or the
``message_start`` ... ``message_stop`` server-sent events, content blocks numbered from 0
and one open at a time, as the ``anthropic`` SDKs and Claude Code read them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from cupola.exceptions import ProviderError
from cupola.models.base import ToolCall, Usage
from cupola.runtime.events import ArgumentsDelta, ItemAdded, RunEvent, RunOutcome, TextDelta
from cupola.runtime.stateless import arguments_object, finish_reason
from cupola.server.render.errors import anthropic_stream_error, classified
from cupola.server.schemas.anthropic import STOP_REASONS


def usage_object(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads apart from ``input_tokens``."""
    return {
        "input_tokens": usage.input_tokens - usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call.call_id,
        "name": call.name,
        "input": arguments_object(call),
    }


def message_object(message_id: str, model: str, outcome: RunOutcome) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": t} for t in outcome.texts() if t]
    content += [tool_use_block(c) for c in outcome.calls()]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[finish_reason(outcome)],
        "stop_sequence": None,
        "usage": usage_object(outcome.usage),
    }


def start_object(message_id: str, model: str) -> dict[str, Any]:
    """The message ``message_start`` announces (empty; usage comes at the end)."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def frame(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class BlockWriter:
    """Content blocks of one streamed message, one open at a time, numbered from 0."""

    def __init__(self) -> None:
        self.count = 0
        self.open: str | None = None
        """``"text"`` or the item id of the open tool_use block."""
        self.calls: set[str] = set()
        """Item ids of the client calls begun."""

    def _start(self, key: str, block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.open = key
        out.append(frame("content_block_start", {"index": self.count, "content_block": block}))
        return out

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        self.count += 1
        return [frame("content_block_stop", {"index": self.count - 1})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return frame("content_block_delta", {"index": self.count, "delta": delta})

    def event(self, event: RunEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            if not event.delta:
                return []
            out = [] if self.open == "text" else self._start("text", {"type": "text", "text": ""})
            return [*out, self._delta({"type": "text_delta", "text": event.delta})]
        if isinstance(event, ArgumentsDelta):
            if event.item_id not in self.calls or not event.delta:
                return []
            if self.open != event.item_id:
                raise ProviderError(
                    "the model interleaved the arguments of parallel tool calls, which a "
                    "Messages stream cannot carry; retry with "
                    "tool_choice.disable_parallel_tool_use"
                )
            return [self._delta({"type": "input_json_delta", "partial_json": event.delta})]
        if not isinstance(event, ItemAdded):
            return []
        item = event.item
        if item.get("type") == "message":
            return self._start("text", {"type": "text", "text": ""})
        if item.get("type") != "function_call":
            return []
        self.calls.add(item["id"])
        block = {"type": "tool_use", "id": item["call_id"], "name": item["name"], "input": {}}
        return self._start(item["id"], block)


async def message_events(
    start: dict[str, Any],
    first: RunEvent | RunOutcome | None,
    rest: AsyncIterator[RunEvent | RunOutcome],
) -> AsyncIterator[bytes]:
    """The stream of a run whose ``first`` event has come (the rest to follow)."""
    yield frame("message_start", {"message": start})
    blocks = BlockWriter()
    outcome: RunOutcome | None = None
    try:
        if isinstance(first, RunOutcome):
            outcome = first
        elif first is not None:
            for data in blocks.event(first):
                yield data
            async for event in rest:
                if isinstance(event, RunOutcome):
                    outcome = event
                    continue
                for data in blocks.event(event):
                    yield data
    except Exception as exc:  # the run (model, tools) failed after the stream began
        yield anthropic_stream_error(classified(exc, "messages stream"))
        return
    for data in blocks.close():
        yield data
    if outcome is None:  # (a run always ends with its outcome)
        return
    delta = {"stop_reason": STOP_REASONS[finish_reason(outcome)], "stop_sequence": None}
    yield frame("message_delta", {"delta": delta, "usage": usage_object(outcome.usage)})
    yield frame("message_stop", {})
