"""The Chat Completions request body, and its translation into a Responses request.

Messages become Responses input items (``system``/``developer``/``user``/``assistant``
messages, an assistant's ``tool_calls`` as ``function_call`` items, ``tool`` messages as
``function_call_output`` items); tools, ``tool_choice`` and ``response_format`` take their
Responses shapes; the parameters the Responses body lacks travel as :class:`ModelOptions`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cupola.domain.limits import strict_flag
from cupola.exceptions import UserError
from cupola.runtime.request import CreateResponse, ModelOptions
from cupola.runtime.stateless import Target

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
_UNSUPPORTED_PARTS = {
    "image_url": "image",
    "input_audio": "audio",
    "file": "file",
}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = None


class ChatCompletionRequest(BaseModel):
    """Every field of the Chat Completions create body cupola reads; unknown fields are
    ignored (``store``, ``metadata``, ``service_tier`` ... have no effect here)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    """A deployment, or an agent (``name`` or ``name:version``)."""
    messages: list[Any] = Field(min_length=1)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    reasoning_effort: ReasoningEffort | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    n: int | None = None
    functions: Any = None
    function_call: Any = None
    modalities: list[str] | None = None

    def check(self) -> None:
        """The rules a schema cannot say, worded as OpenAI words them."""
        if self.n is not None and self.n != 1:
            raise UserError(
                "n: cupola returns one choice per request; send n=1 or leave it out",
                param="n",
                code="unsupported_value",
            )
        if self.functions is not None or self.function_call is not None:
            raise UserError(
                "functions and function_call are deprecated and not supported; "
                "use tools and tool_choice",
                param="functions" if self.functions is not None else "function_call",
                code="unsupported_parameter",
            )
        if self.modalities and set(self.modalities) - {"text"}:
            raise UserError("modalities: only 'text' output is supported", param="modalities")
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise UserError(
                "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not "
                "supported.",
                param="max_tokens",
                code="invalid_parameter_combination",
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise UserError("top_logprobs requires logprobs to be true", param="top_logprobs")
        if self.stream_options is not None and not self.stream:
            raise UserError(
                "stream_options is only allowed when stream is true", param="stream_options"
            )
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise UserError("stop: at most 4 sequences", param="stop")
        for token, bias in (self.logit_bias or {}).items():
            if not -100 <= bias <= 100:
                raise UserError(
                    f"logit_bias[{token!r}] must be between -100 and 100", param="logit_bias"
                )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


def _text(content: Any, where: str, *, allow_none: bool = False) -> str | None:
    """A message's text: a string, or text parts (refusal parts count as text)."""
    if content is None and allow_none:
        return None
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise UserError(
            f"{where}.content must be a string or a list of content parts",
            param=f"{where}.content",
        )
    texts: list[str] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _UNSUPPORTED_PARTS:
            raise UserError(
                f"{at}: {_UNSUPPORTED_PARTS[kind]} input is not supported: the models cupola "
                "serves take text only",
                param=at,
                code="unsupported_content",
            )
        key = "refusal" if kind == "refusal" else "text"
        value = part.get(key) if isinstance(part, dict) and kind in ("text", "refusal") else None
        if not isinstance(value, str):
            raise UserError(
                f"{at} must be a text part: {{'type': 'text', 'text': '...'}}", param=at
            )
        texts.append(value)
    return "".join(texts)


def _calls(raw: Any, where: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
    items = []
    for j, call in enumerate(raw):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise UserError(
                f"{at} must be {{'id', 'type': 'function', 'function': {{'name', 'arguments'}}}}",
                param=at,
            )
        call_id, name = call.get("id"), function.get("name")
        arguments = function.get("arguments", "{}")
        if not isinstance(call_id, str) or not call_id:
            raise UserError(f"{at}.id must be a non-empty string", param=f"{at}.id")
        if not isinstance(name, str) or not name:
            raise UserError(f"{at}.function.name must be a non-empty string", param=at)
        if not isinstance(arguments, str):
            raise UserError(f"{at}.function.arguments must be a JSON string", param=at)
        items.append(
            {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
        )
    return items


def messages_to_items(messages: list[Any]) -> list[dict[str, Any]]:
    """Chat messages as Responses input items; every tool message must answer a call."""
    items: list[dict[str, Any]] = []
    called: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise UserError(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer", "user"):
            text = _text(message.get("content"), where)
            items.append({"type": "message", "role": role, "content": text})
        elif role == "assistant":
            text = _text(message.get("content"), where, allow_none=True)
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            calls = _calls(message.get("tool_calls"), where)
            called.update(c["call_id"] for c in calls)
            items += calls
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in called:
                raise UserError(
                    f"{where}: a 'tool' message must answer a preceding assistant tool_calls "
                    f"entry by its id (tool_call_id {call_id!r} matches none)",
                    param=f"{where}.tool_call_id",
                    code="invalid_call_id",
                )
            output = _text(message.get("content"), where)
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        elif role == "function":
            raise UserError(
                f"{where}: the 'function' role is deprecated and not supported; use 'tool'",
                param=f"{where}.role",
            )
        else:
            raise UserError(
                f"{where}.role must be system, developer, user, assistant or tool",
                param=f"{where}.role",
            )
    return items


def tools_to_responses(tools: list[Any] | None) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise UserError(
                f"{at}: only function tools are supported (got type {kind!r})",
                param=f"{at}.type",
                code="unsupported_tool",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise UserError(
                f"{at}.function must be an object with name, description, parameters",
                param=f"{at}.function",
            )
        out.append({**function, "type": "function"})
    return out


def tool_choice_to_responses(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return choice
    function = choice.get("function")
    if choice.get("type") == "function" and isinstance(function, dict):
        return {"type": "function", "name": function.get("name")}
    raise UserError(
        "tool_choice must be 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}",
        param="tool_choice",
    )


def format_to_text(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """``response_format`` as the Responses ``text.format``."""
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return {"type": "text"}
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise UserError(
            "response_format.type must be 'text', 'json_object' or 'json_schema'",
            param="response_format.type",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise UserError(
            "response_format.json_schema must be {'name', 'schema', 'strict'?} with a JSON "
            "Schema object as schema",
            param="response_format.json_schema",
        )
    return {
        "type": "json_schema",
        "name": spec.get("name"),
        "description": spec.get("description"),
        "schema": spec["schema"],
        "strict": bool(strict_flag(spec.get("strict"), "response_format.json_schema.strict")),
    }


def to_runtime(req: ChatCompletionRequest, target: Target) -> tuple[CreateResponse, ModelOptions]:
    """The Responses request (not stored) and the extra model options of a chat request."""
    req.check()
    text: dict[str, Any] = {}
    fmt = format_to_text(req.response_format)
    if fmt is not None:
        text["format"] = fmt
    if req.verbosity is not None:
        text["verbosity"] = req.verbosity
    create = CreateResponse.model_validate(
        {
            **target.fields,
            "input": messages_to_items(req.messages),
            "tools": tools_to_responses(req.tools),
            "tool_choice": tool_choice_to_responses(req.tool_choice),
            "parallel_tool_calls": req.parallel_tool_calls,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "presence_penalty": req.presence_penalty,
            "frequency_penalty": req.frequency_penalty,
            "max_output_tokens": req.max_tokens,
            "text": text or None,
            "reasoning": {"effort": req.reasoning_effort} if req.reasoning_effort else None,
            "top_logprobs": req.top_logprobs,
            "user": req.user,
            "stream": bool(req.stream),
            "store": False,
        }
    )
    options = ModelOptions(
        stop=req.stops(),
        seed=req.seed,
        logprobs=req.logprobs,
        logit_bias=req.logit_bias,
        max_completion_tokens=req.max_completion_tokens,
    )
    return create, options


# ---- the answer ------------------------------------------------------------------------------


class FunctionCall(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[ToolCallOut] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: dict[str, Any] | None
    finish_reason: str


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int]
    completion_tokens_details: dict[str, int]


class ChatCompletion(BaseModel):
    """A ``chat.completion`` (the non-streamed answer)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None
