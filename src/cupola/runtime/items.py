"""Items: normalising what clients send, and turning history into model messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from cupola.domain.records import Item
from cupola.exceptions import UserError
from cupola.ids import new_id
from cupola.models.base import ChatMessage, ToolCall
from cupola.tools.namespace import served_name

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")
PASSTHROUGH_ITEMS = frozenset(
    {
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "code_interpreter_call",
        "file_search_call",
        "openapi_call",
    }
)
"""Output items of server-side tools a client may send back as input (stateless mode)."""


def _content_parts(role: str, content: Any, where: str) -> list[dict[str, Any]]:
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        part: dict[str, Any] = {"type": text_type, "text": content}
        if role == "assistant":
            part["annotations"] = []
        return [part]
    if not isinstance(content, list):
        raise UserError(f"{where}.content must be a string or a list of content parts", param=where)
    parts = []
    for i, raw in enumerate(content):
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise UserError(f"{where}.content[{i}] must be an object with a type", param=where)
        if raw["type"] in _TEXT_PARTS and not isinstance(raw.get("text"), str):
            raise UserError(f"{where}.content[{i}].text must be a string", param=where)
        part = dict(raw)
        if part["type"] == "output_text":
            part.setdefault("annotations", [])
        parts.append(part)
    return parts


def _require_str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}.{key} must be a non-empty string", param=f"{where}.{key}")
    return value


def normalize_item(raw: Any, where: str) -> Item:
    """One input item in its stored shape, with an id and a status."""
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be an object", param=where)
    kind = raw.get("type") or ("message" if "role" in raw else None)
    if kind == "message":
        role = raw.get("role")
        if role not in MESSAGE_ROLES:
            raise UserError(f"{where}.role must be one of {', '.join(MESSAGE_ROLES)}", param=where)
        return {
            "id": raw.get("id") or new_id("msg"),
            "type": "message",
            "role": role,
            "status": raw.get("status") or "completed",
            "content": _content_parts(role, raw.get("content"), where),
        }
    if kind == "function_call":
        arguments = raw.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise UserError(f"{where}.arguments must be a JSON string", param=where)
        item = {
            "id": raw.get("id") or new_id("fc"),
            "type": "function_call",
            "call_id": _require_str(raw, "call_id", where),
            "name": _require_str(raw, "name", where),
            "arguments": arguments,
            "status": raw.get("status") or "completed",
        }
        if raw.get("namespace") is not None:  # a call of a namespace tool's function
            item["namespace"] = _require_str(raw, "namespace", where)
        return item
    if kind == "function_call_output":
        output = raw.get("output")
        if isinstance(output, list):
            output = _content_parts("user", output, where)
        elif not isinstance(output, str):
            raise UserError(f"{where}.output must be a string or a list of parts", param=where)
        return {
            "id": raw.get("id") or new_id("fco"),
            "type": "function_call_output",
            "call_id": _require_str(raw, "call_id", where),
            "output": output,
            "status": raw.get("status") or "completed",
        }
    if kind == "mcp_approval_response":
        if not isinstance(raw.get("approve"), bool):
            raise UserError(f"{where}.approve must be true or false", param=f"{where}.approve")
        return {
            "id": raw.get("id") or new_id("mcpa"),
            "type": "mcp_approval_response",
            "approval_request_id": _require_str(raw, "approval_request_id", where),
            "approve": raw["approve"],
            "reason": raw.get("reason"),
        }
    if kind in PASSTHROUGH_ITEMS:
        _require_str(raw, "id", where)
        return dict(raw)
    if kind in (None, "item_reference"):
        raise UserError(
            f"{where}: item references are not supported; send the item itself", param=where
        )
    raise UserError(f"{where}.type {kind!r} is not a supported input item", param=where)


def normalize_input(raw: Any) -> list[Item]:
    """The request's ``input`` as stored items (a string is one user message)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [normalize_item({"type": "message", "role": "user", "content": raw}, "input")]
    if not isinstance(raw, list):
        raise UserError("input must be a string or a list of items", param="input")
    return [normalize_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def check_call_outputs(history: Iterable[Item], new_items: list[Item]) -> None:
    """Every ``function_call_output`` must answer a ``function_call`` the model made."""
    known: set[str] = set()
    for item in [*history, *new_items]:
        if item.get("type") == "function_call":
            known.add(item["call_id"])
        elif item.get("type") == "function_call_output" and item["call_id"] not in known:
            raise UserError(
                f"no function call found with call_id {item['call_id']!r}",
                param="input",
                code="invalid_call_id",
            )


_MODEL_ITEMS = frozenset({"message", "function_call", "function_call_output"})


def text_of(parts: Any) -> str:
    """The text of a content-part list (or a plain string)."""
    if isinstance(parts, str):
        return parts
    chunks = []
    for part in parts or ():
        if part.get("type") in _TEXT_PARTS:
            chunks.append(part.get("text", ""))
        elif part.get("type") == "refusal":
            chunks.append(part.get("refusal", ""))
    return "".join(chunks)


def _denials(items: list[Item]) -> dict[str, str]:
    """Approval requests the client refused: request id -> reason."""
    return {
        item["approval_request_id"]: item.get("reason") or "the user did not approve this call"
        for item in items
        if item.get("type") == "mcp_approval_response" and not item.get("approve")
    }


def _add_call(messages: list[ChatMessage], call: ToolCall) -> None:
    """Attach a call to the assistant turn it belongs to (or open one)."""
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant":
        messages[-1] = ChatMessage(
            role="assistant", content=last.content, tool_calls=(*last.tool_calls, call)
        )
    else:
        messages.append(ChatMessage(role="assistant", tool_calls=(call,)))


def to_messages(instructions: list[str], items: Iterable[Item]) -> list[ChatMessage]:
    """History items as model messages; consecutive tool calls join one assistant turn."""
    from cupola.tools.registry import render_item

    messages = [ChatMessage(role="system", content=text) for text in instructions if text]
    names: dict[str, str] = {}
    items = list(items)
    denied = _denials(items)
    for item in items:
        kind = item.get("type")
        if kind == "mcp_approval_request":
            if item["id"] in denied:
                call = ToolCall(item["id"], item["name"], item.get("arguments") or "{}")
                _add_call(messages, call)
                refusal = f"The call was not approved: {denied[item['id']]}"
                messages.append(
                    ChatMessage("tool", refusal, tool_call_id=call.call_id, name=call.name)
                )
            continue
        rendered = render_item(item) if kind not in _MODEL_ITEMS else None
        if rendered is not None:
            _add_call(messages, rendered.call)
            messages.append(
                ChatMessage(
                    "tool",
                    rendered.output,
                    tool_call_id=rendered.call.call_id,
                    name=rendered.call.name,
                )
            )
        elif kind == "message":
            messages.append(ChatMessage(role=item["role"], content=text_of(item["content"])))
        elif kind == "function_call":
            name = served_name(item.get("namespace"), item["name"])
            call = ToolCall(item["call_id"], name, item["arguments"])
            names[call.call_id] = call.name
            _add_call(messages, call)
        elif kind == "function_call_output":
            output = item["output"]
            messages.append(
                ChatMessage(
                    role="tool",
                    content=output if isinstance(output, str) else text_of(output),
                    tool_call_id=item["call_id"],
                    name=names.get(item["call_id"]),
                )
            )
    return messages


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
