"""A stateless run as the OpenAI Chat Completions API answers it: a ``chat.completion``, or
``chat.completion.chunk`` server-sent events ending with ``data: [DONE]``. How the call was
served (the deployment, attempts, parameter adjustments) goes in ``x-cupola-*`` headers so
the body keeps exactly the OpenAI shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson

from cupola.models.base import CallReport, Usage
from cupola.runtime.events import ArgumentsDelta, ItemAdded, RunEvent, RunOutcome, TextDelta
from cupola.runtime.prepare import Prepared
from cupola.runtime.stateless import finish_reason
from cupola.server.render.errors import chat_stream_error, classified

MESSAGE_BREAK = "\n\n"
"""Between the texts of two assistant messages of one run (around a server-side tool)."""
CLIENT_ITEMS = ("message", "function_call")


def client_visible(event: RunEvent | RunOutcome) -> bool:
    """Whether a client endpoint (Chat Completions, Messages) shows anything of ``event``:
    the start and text of a message, the start and arguments of a client function call, the
    end. Server tools' items are not shown."""
    if isinstance(event, ItemAdded):
        return event.item.get("type") in CLIENT_ITEMS
    return isinstance(event, (TextDelta, ArgumentsDelta, RunOutcome))


def report_headers(report: CallReport) -> dict[str, str]:
    """``x-cupola-deployment``, ``x-cupola-attempts`` and, when any parameter was changed on
    its way upstream, ``x-cupola-adjustments`` (a JSON list of ``{param, action, detail}``)."""
    headers = {"x-cupola-attempts": str(report.attempts)}
    if report.deployment:
        headers["x-cupola-deployment"] = report.deployment
    if report.adjustments:
        adjustments = [a.as_dict() for a in report.adjustments]
        headers["x-cupola-adjustments"] = json.dumps(adjustments, separators=(",", ":"))
    return headers


def start_headers(prepared: Prepared) -> dict[str, str]:
    """What is known when a stream starts: the deployment the request resolved to."""
    return {"x-cupola-deployment": prepared.model.name}


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_object(completion_id: str, created: int, model: str, outcome: RunOutcome) -> Any:
    text = MESSAGE_BREAK.join(t for t in outcome.texts() if t)
    calls = outcome.calls()
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(outcome),
            }
        ],
        "usage": usage_object(outcome.usage),
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Frames ``chat.completion.chunk`` events for one completion."""

    def __init__(self, completion_id: str, created: int, model: str, usage: bool) -> None:
        self.prefix = (
            b'{"id":'
            + orjson.dumps(completion_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":null'
        )
        self.head = self.prefix + (b',"usage":null' if usage else b"") + b',"choices":'
        self.texts = 0
        """Assistant messages begun so far (a later one is set off by a blank line)."""
        self.calls: dict[str, int] = {}
        """Item id -> index of each client call (counted from 0 in the reply)."""

    def choice(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + self.head + orjson.dumps([choice]) + b"}\n\n"

    def usage(self, usage: Usage) -> bytes:
        """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
        body = orjson.dumps(usage_object(usage))
        return b"data: " + self.prefix + b',"choices":[],"usage":' + body + b"}\n\n"

    def event(self, event: RunEvent) -> bytes | None:
        if isinstance(event, TextDelta):
            return self.choice({"content": event.delta}) if event.delta else None
        if isinstance(event, ArgumentsDelta):
            index = self.calls.get(event.item_id)
            if index is None or not event.delta:
                return None
            fragment = {"index": index, "function": {"arguments": event.delta}}
            return self.choice({"tool_calls": [fragment]})
        if not isinstance(event, ItemAdded):
            return None
        item = event.item
        if item.get("type") == "message":
            self.texts += 1
            return self.choice({"content": MESSAGE_BREAK}) if self.texts > 1 else None
        if item.get("type") != "function_call":
            return None
        index = self.calls[item["id"]] = len(self.calls)
        call = {
            "index": index,
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": ""},
        }
        return self.choice({"tool_calls": [call]})


async def chunks(
    first: RunEvent | RunOutcome | None,
    rest: AsyncIterator[RunEvent | RunOutcome],
    writer: ChunkWriter,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The stream of a run whose ``first`` event has come (the rest to follow)."""
    yield writer.choice({"role": "assistant", "content": "", "refusal": None})
    outcome: RunOutcome | None = None
    try:
        if isinstance(first, RunOutcome):
            outcome = first
        elif first is not None:
            frame = writer.event(first)
            if frame:
                yield frame
            async for event in rest:
                if isinstance(event, RunOutcome):
                    outcome = event
                    continue
                frame = writer.event(event)
                if frame:
                    yield frame
    except Exception as exc:  # the run (model, tools) failed after the stream began
        yield chat_stream_error(classified(exc, "chat completion stream"))
        return
    if outcome is None:  # (a run always ends with its outcome)
        return
    yield writer.choice({}, finish_reason(outcome))
    if include_usage:
        yield writer.usage(outcome.usage)
    yield b"data: [DONE]\n\n"
