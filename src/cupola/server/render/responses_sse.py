"""A run's typed events as Responses API server-sent events (``event: TYPE`` / ``data: {...}``),
numbered from 0 by ``sequence_number``, in the order and shape the openai SDKs, the Agents
SDK and Codex read:

- ``response.created``, ``response.in_progress``;
- per item: ``response.output_item.added``; for a message ``response.content_part.added``,
  ``response.output_text.delta`` ..., ``response.output_text.done``,
  ``response.content_part.done``; for a function call
  ``response.function_call_arguments.delta`` ..., ``response.function_call_arguments.done``;
  then ``response.output_item.done``;
- ``response.completed``, ``response.incomplete`` or ``response.failed``, with the response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from cupola.runtime.events import (
    ArgumentsDelta,
    ArgumentsDone,
    ItemAdded,
    ItemDone,
    RunEvent,
    RunOutcome,
    StatusChanged,
    TextDelta,
    TextDone,
)

_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete"}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def events(event: RunEvent | RunOutcome) -> list[tuple[str, dict[str, Any]]]:
    """The Responses events (type, fields without the sequence number) of one run event."""
    if isinstance(event, TextDelta):
        fields = {
            "item_id": event.item_id,
            "output_index": event.index,
            "content_index": 0,
            "delta": event.delta,
            "logprobs": [],
        }
        return [("response.output_text.delta", fields)]
    if isinstance(event, ArgumentsDelta):
        fields = {"item_id": event.item_id, "output_index": event.index, "delta": event.delta}
        return [("response.function_call_arguments.delta", fields)]
    if isinstance(event, ItemAdded):
        out = [("response.output_item.added", {"output_index": event.index, "item": event.item})]
        if event.item.get("type") == "message":  # its one output_text part opens with it
            part = {
                "item_id": event.item["id"],
                "output_index": event.index,
                "content_index": 0,
                "part": _part(""),
            }
            out.append(("response.content_part.added", part))
        return out
    if isinstance(event, ItemDone):
        return [("response.output_item.done", {"output_index": event.index, "item": event.item})]
    if isinstance(event, TextDone):
        head = {"item_id": event.item_id, "output_index": event.index, "content_index": 0}
        return [
            ("response.output_text.done", {**head, "text": event.text, "logprobs": []}),
            ("response.content_part.done", {**head, "part": _part(event.text)}),
        ]
    if isinstance(event, ArgumentsDone):
        fields = {
            "item_id": event.item_id,
            "output_index": event.index,
            "arguments": event.arguments,
        }
        return [("response.function_call_arguments.done", fields)]
    if isinstance(event, StatusChanged):
        return [(f"response.{event.kind}", {"response": event.response})]
    kind = _TERMINAL.get(event.status, "response.failed")
    return [(kind, {"response": event.response})]


def sse(run: AsyncIterator[RunEvent | RunOutcome]) -> AsyncIterator[bytes]:
    """The SSE frames of a run's events."""

    async def frames() -> AsyncIterator[bytes]:
        sequence = 0
        async for event in run:
            for kind, fields in events(event):
                data = orjson.dumps({"type": kind, "sequence_number": sequence, **fields})
                sequence += 1
                yield b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    return frames()
