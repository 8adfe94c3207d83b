"""The Anthropic Messages request body, and its translation into a Responses request.

``system`` becomes the instructions; ``text`` blocks become messages, an assistant's
``tool_use`` blocks ``function_call`` items and a user's ``tool_result`` blocks
``function_call_output`` items, and a ``system`` message mid-conversation stays a system
message where it is; ``tools`` (name, description, input_schema) become function tools;
``output_config.effort`` becomes the reasoning effort; ``stop_sequences`` and
``metadata.user_id`` travel as model options. ``thinking`` blocks an assistant turn carries
back are the model's own notes and are not replayed.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cupola.domain.limits import strict_flag
from cupola.exceptions import UserError
from cupola.runtime.request import CreateResponse, ModelOptions
from cupola.runtime.stateless import Target

_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_MEDIA_BLOCKS = frozenset({"image", "document", "search_result", "container_upload"})


class CountTokensRequest(BaseModel):
    """The body of ``POST /v1/messages/count_tokens``; unknown fields are ignored
    (``thinking``, ``context_management``, ``cache_control`` on blocks ...)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    """A deployment, or an agent (``name`` or ``name:version``)."""
    messages: list[Any] = Field(min_length=1)
    system: str | list[Any] | None = None
    tools: list[Any] | None = None
    tool_choice: dict[str, Any] | None = None


class MessagesRequest(CountTokensRequest):
    """The body of ``POST /v1/messages``. ``top_k`` is accepted but no model adapter takes
    it, so it has no effect."""

    max_tokens: int = Field(ge=1)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    stream: StrictBool | None = None
    metadata: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    """``{"effort": "low" | "medium" | "high"}`` becomes the reasoning effort (which only
    reasoning deployments take; the others drop it and say so)."""


def _text_blocks(content: Any, where: str) -> str:
    """``system`` or a ``tool_result``'s content: a string or text blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise UserError(f"{where} must be a string or a list of text blocks", param=where)
    texts = []
    for j, block in enumerate(content):
        at = f"{where}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in _MEDIA_BLOCKS:
            raise UserError(
                f"{at}: {kind} blocks are not supported: the models cupola serves take text only",
                param=at,
                code="unsupported_content",
            )
        if kind != "text" or not isinstance(block.get("text"), str):
            raise UserError(f"{at} must be a text block {{'type': 'text', 'text'}}", param=at)
        texts.append(block["text"])
    return "\n\n".join(texts) if where == "system" else "".join(texts)


class _Translation:
    """Messages -> Responses input items, keeping the order of blocks."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.called: set[str] = set()
        self.pending: list[str] = []

    def flush(self, role: str) -> None:
        if self.pending:
            text = "".join(self.pending)
            self.items.append({"type": "message", "role": role, "content": text})
            self.pending = []

    def block(self, role: str, block: Any, at: str) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            self.pending.append(block["text"])
        elif kind in _SKIPPED_BLOCKS:
            return
        elif kind == "tool_use" and role == "assistant":
            self.tool_use(block, at)
        elif kind == "tool_result" and role == "user":
            self.tool_result(block, at)
        elif kind in _MEDIA_BLOCKS:
            raise UserError(
                f"{at}: {kind} blocks are not supported: the models cupola serves take text only",
                param=at,
                code="unsupported_content",
            )
        else:
            raise UserError(
                f"{at}: a {role} message takes text"
                + (" and tool_use" if role == "assistant" else " and tool_result")
                + f" blocks, not {kind!r}",
                param=at,
            )

    def tool_use(self, block: dict[str, Any], at: str) -> None:
        call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
        if not isinstance(call_id, str) or not call_id:
            raise UserError(f"{at}.id must be a non-empty string", param=f"{at}.id")
        if not isinstance(name, str) or not name:
            raise UserError(f"{at}.name must be a non-empty string", param=f"{at}.name")
        if not isinstance(arguments, dict):
            raise UserError(f"{at}.input must be an object", param=f"{at}.input")
        self.flush("assistant")
        self.called.add(call_id)
        self.items.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": name,
                "arguments": orjson.dumps(arguments).decode(),
            }
        )

    def tool_result(self, block: dict[str, Any], at: str) -> None:
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or call_id not in self.called:
            raise UserError(
                f"{at}: tool_result block(s) must answer a tool_use block of the previous "
                f"assistant message (tool_use_id {call_id!r} matches none)",
                param=f"{at}.tool_use_id",
                code="invalid_call_id",
            )
        output = _text_blocks(block.get("content", ""), f"{at}.content")
        if block.get("is_error"):
            output = f"Error: {output}"
        self.flush("user")
        self.items.append({"type": "function_call_output", "call_id": call_id, "output": output})

    def message(self, message: Any, where: str) -> None:
        if not isinstance(message, dict):
            raise UserError(f"{where} must be an object", param=where)
        role = message.get("role")
        if role == "system":  # a mid-conversation system message (Claude Code sends them)
            text = _text_blocks(message.get("content"), f"{where}.content")
            self.items.append({"type": "message", "role": "system", "content": text})
            return
        if role not in ("user", "assistant"):
            raise UserError(
                f"{where}.role must be 'user', 'assistant' or 'system'", param=f"{where}.role"
            )
        content = message.get("content")
        if isinstance(content, str):
            self.items.append({"type": "message", "role": role, "content": content})
            return
        if not isinstance(content, list):
            raise UserError(
                f"{where}.content must be a string or a list of content blocks",
                param=f"{where}.content",
            )
        for j, block in enumerate(content):
            self.block(role, block, f"{where}.content[{j}]")
        self.flush(role)


def messages_to_items(messages: list[Any]) -> list[dict[str, Any]]:
    translation = _Translation()
    for i, message in enumerate(messages):
        translation.message(message, f"messages[{i}]")
    return translation.items


def tools_to_responses(tools: list[Any] | None) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise UserError(f"{at} must be an object", param=at)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise UserError(
                f"{at}: tool type {kind!r} (a server tool) is not supported; declare a custom "
                "tool with name, description and input_schema",
                param=f"{at}.type",
                code="unsupported_tool",
            )
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise UserError(f"{at}.input_schema must be a JSON Schema object", param=at)
        out.append(
            {
                "type": "function",
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": schema,
            }
        )
    return out


def tool_choice_to_responses(choice: dict[str, Any] | None) -> tuple[Any, bool | None]:
    """The Responses ``tool_choice`` and ``parallel_tool_calls``."""
    if choice is None:
        return None, None
    kind = choice.get("type")
    disable = strict_flag(
        choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use"
    )
    parallel = False if disable else None
    mapping: dict[str, Any] = {"auto": "auto", "any": "required", "none": "none"}
    if kind in mapping:
        return mapping[kind], parallel
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "name": choice["name"]}, parallel
    raise UserError(
        "tool_choice must be {'type': 'auto' | 'any' | 'none'} or {'type': 'tool', 'name'}",
        param="tool_choice",
    )


def to_runtime(
    req: CountTokensRequest, target: Target, *, stream: bool = False
) -> tuple[CreateResponse, ModelOptions]:
    """The Responses request (not stored) and the extra model options of a Messages body."""
    tool_choice, parallel = tool_choice_to_responses(req.tool_choice)
    fields: dict[str, Any] = {
        **target.fields,
        "instructions": _text_blocks(req.system, "system") if req.system is not None else None,
        "input": messages_to_items(req.messages),
        "tools": tools_to_responses(req.tools),
        "tool_choice": tool_choice,
        "parallel_tool_calls": parallel,
        "stream": stream,
        "store": False,
    }
    options = ModelOptions()
    if isinstance(req, MessagesRequest):
        user = (req.metadata or {}).get("user_id")
        effort = (req.output_config or {}).get("effort")
        fields.update(
            max_output_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            user=user if isinstance(user, str) else None,
            reasoning={"effort": effort} if effort in ("low", "medium", "high") else None,
        )
        options = ModelOptions(stop=tuple(req.stop_sequences or ()))
    return CreateResponse.model_validate(fields), options


StopReason = Literal["end_turn", "max_tokens", "tool_use"]
STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


# ---- the answer ------------------------------------------------------------------------------


class MessageUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class ContentBlock(BaseModel):
    """A ``text`` block (``text``) or a ``tool_use`` block (``id``, ``name``, ``input``)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text", "tool_use"]


class Message(BaseModel):
    """A ``message`` (the non-streamed answer of ``POST /v1/messages``)."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: str | None
    stop_sequence: str | None
    usage: MessageUsage


class TokenCount(BaseModel):
    input_tokens: int
