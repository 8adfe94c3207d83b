"""Open Responses trace export: stored responses as the per-turn traces evaluation tools
read (the shape of the AI GO! integration in docs/observability.md, "Trace export").

Each response becomes one turn: its user input, then its output as Open Responses items,
where an ``mcp_call`` becomes a ``function_call`` and its ``function_call_output`` (linked by
``call_id``, the MCP call's id), a client ``function_call`` stays one, informational items
(``mcp_list_tools``, approval requests, reasoning) are left out, and the assistant's text is
one ``message`` at the end carrying the ``conversation_id`` (an extra field, which the next
turn echoes back). Usage is ``num_prompt_tokens`` / ``num_completion_tokens``.
Item ids are derived from the stored ones, so exporting twice gives the same document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from cupola.domain import StoredResponse
from cupola.exceptions import UserError
from cupola.store import Store

FORMAT = "open-responses"
MAX_RESPONSES = 100
"""Response ids one export request may name."""
_STATUSES = ("in_progress", "completed", "incomplete")


def _text(content: Any, kind: str) -> str:
    """The text blocks of ``kind`` in a message's content, joined (a plain string as is)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        str(block.get("text") or "")
        for block in content
        if isinstance(block, dict) and block.get("type") == kind
    )


def _mcp_output(item: dict[str, Any]) -> str:
    """An MCP call's result as one string: its output, else its error as JSON."""
    output = item.get("output")
    if isinstance(output, str) and output:
        return output
    error = item.get("error")
    if error:
        return orjson.dumps({"error": error}).decode()
    return "" if output is None else orjson.dumps(output).decode()


def _status(item: dict[str, Any]) -> str:
    status = item.get("status")
    return status if status in _STATUSES else "completed"


def output_items(output: list[dict[str, Any]], conversation_id: str) -> list[dict[str, Any]]:
    """A response's output items as Open Responses trace items (see the module doc)."""
    items: list[dict[str, Any]] = []
    answer: list[str] = []
    message_id = ""
    for item in output:
        kind = item.get("type")
        if kind == "mcp_call":
            call_id = str(item.get("id") or "")
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_{call_id}",
                    "call_id": call_id,
                    "name": item.get("name") or "",
                    "arguments": item.get("arguments") or "{}",
                    "status": "completed",
                }
            )
            items.append(
                {
                    "type": "function_call_output",
                    "id": f"fco_{call_id}",
                    "call_id": call_id,
                    "output": _mcp_output(item),
                    "status": "completed",
                }
            )
        elif kind == "function_call":
            call_id = str(item.get("call_id") or item.get("id") or "")
            items.append(
                {
                    "type": "function_call",
                    "id": str(item.get("id") or f"fc_{call_id}"),
                    "call_id": call_id,
                    "name": item.get("name") or "",
                    "arguments": item.get("arguments") or "{}",
                    "status": _status(item),
                }
            )
        elif kind == "message" and item.get("role") == "assistant":
            answer.append(_text(item.get("content"), "output_text"))
            message_id = message_id or str(item.get("id") or "")
    items.append(
        {
            "type": "message",
            "id": message_id or f"msg_{conversation_id}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "".join(answer), "annotations": []}],
            "conversation_id": conversation_id,
        }
    )
    return items


def input_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user's messages among a response's input items, as Open Responses messages."""
    out = []
    for item in items:
        if item.get("type", "message") != "message" or item.get("role") != "user":
            continue
        content = item.get("content")
        text = content if isinstance(content, str) else _text(content, "input_text")
        out.append(
            {
                "type": "message",
                "id": str(item.get("id") or ""),
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        )
    return out


def turn(stored: StoredResponse) -> dict[str, Any]:
    """One stored response as an exported turn."""
    body = stored.body
    conversation = body.get("conversation")
    conversation_id = str(conversation.get("id") or "") if isinstance(conversation, dict) else ""
    usage = body.get("usage") or {}
    output = [i for i in body.get("output") or [] if isinstance(i, dict)]
    return {
        "response_id": body.get("id"),
        "conversation_id": conversation_id or None,
        "status": body.get("status"),
        "input": input_items([i for i in stored.input_items if isinstance(i, dict)]),
        "items": output_items(output, conversation_id),
        "usage": {
            "num_prompt_tokens": int(usage.get("input_tokens") or 0),
            "num_completion_tokens": int(usage.get("output_tokens") or 0),
        },
    }


@dataclass
class ExportService:
    """Exports stored responses (a conversation's, or named ones) as Open Responses turns."""

    store: Store

    async def export(
        self,
        project: str,
        *,
        conversation_id: str | None = None,
        response_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """The export document: ``{"object": "list", "format", "conversation_id"?, "data":
        [turn, ...]}``, turns oldest first. Exactly one of ``conversation_id`` and
        ``response_ids`` (at most :data:`MAX_RESPONSES`; an unknown one is a 404)."""
        if (conversation_id is None) == (response_ids is None):
            raise UserError("give either conversation_id or response_ids", param="conversation_id")
        if conversation_id is not None:
            found = await self.store.list_conversation_responses(project, conversation_id)
        else:
            assert response_ids is not None
            if not response_ids or len(response_ids) > MAX_RESPONSES:
                raise UserError(
                    f"response_ids names 1 to {MAX_RESPONSES} responses", param="response_ids"
                )
            found = [await self.store.get_response(project, rid) for rid in response_ids]
        document: dict[str, Any] = {"object": "list", "format": FORMAT}
        if conversation_id is not None:
            document["conversation_id"] = conversation_id
        document["data"] = [turn(stored) for stored in found]
        return document
