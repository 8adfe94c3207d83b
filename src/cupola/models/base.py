"""The Model interface: one wire format in, a stream of model events out.

A Model adapts one wire API (Chat Completions, the embedded llama.cpp, a script). It knows
nothing about agents, conversations or storage: the runtime turns Responses items into a
:class:`ModelRequest` and turns the :data:`ModelEvent` stream back into output items.
Credentials and clients come from the deployment config (see ``registry.py``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call of a function tool the model asked for."""

    call_id: str
    name: str
    arguments: str
    """The arguments as JSON text, exactly as the model produced them."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation as the model sees it."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    """For ``assistant`` messages: the tool calls it made."""
    tool_call_id: str | None = None
    """For ``tool`` messages: the call this message answers."""
    name: str | None = None
    """For ``tool`` messages: the name of the function that produced the output."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function the model may call."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


ToolChoice: TypeAlias = str | dict[str, Any]
"""``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "name": ...}``."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything a model is asked, in a provider-neutral shape."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[FunctionSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    """The Responses ``text.format``: ``{"type": "json_schema", "name", "schema", "strict"}``,
    ``{"type": "json_object"}``, or None for plain text."""
    reasoning_effort: str | None = None
    parallel_tool_calls: bool = True
    max_completion_tokens: int | None = None
    """The reasoning models' token cap (visible output plus reasoning). Set by the compat
    wrapper in place of ``max_output_tokens``; adapters send whichever is set."""
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    verbosity: str | None = None
    """``low``, ``medium`` or ``high`` (reasoning models only)."""
    user: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of the assistant's text reply."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call. The first fragment of each call carries its id and name."""

    index: int
    """Position of the call among this reply's calls (0, 1, ...)."""
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    """A fragment of the JSON arguments; fragments of one index concatenate."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A request parameter changed on its way to the provider (never silently)."""

    param: str
    action: Literal["dropped", "translated"]
    detail: str
    """Why, or what it became: ``"max_tokens 1000 -> max_completion_tokens 4096"``."""

    def as_dict(self) -> dict[str, str]:
        return {"param": self.param, "action": self.action, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class CallReport:
    """How a call was served, as the wrappers around the adapter saw it."""

    deployment: str | None = None
    """The deployment that finally served the call (a fallback, or a router's choice)."""
    attempts: int = 1
    """Requests sent upstream in all (retries and fallbacks included)."""
    failed_over: tuple[str, ...] = ()
    """Deployments tried before the one that served, in order."""
    adjustments: tuple[Adjustment, ...] = ()
    route: str | None = None
    """The deployment a model-router chose, and ``route_reason`` why."""
    route_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (empty parts left out)."""
        data: dict[str, Any] = {"deployment": self.deployment, "attempts": self.attempts}
        if self.failed_over:
            data["failed_over"] = list(self.failed_over)
        if self.adjustments:
            data["adjustments"] = [a.as_dict() for a in self.adjustments]
        if self.route is not None:
            data["route"] = {"deployment": self.route, "reason": self.route_reason}
        return data


@dataclass(frozen=True, slots=True)
class Finish:
    """The last event of every successful stream."""

    reason: FinishReason
    usage: Usage = Usage()
    model: str | None = None
    """The upstream model that served the call, when the provider says."""
    report: CallReport = CallReport()
    """Filled in by the wrappers (compat, resilience, router) on the way out."""


ModelEvent: TypeAlias = TextDelta | ToolCallDelta | Finish


class Model(abc.ABC):
    """A deployment's model. Implementations raise :class:`cupola.exceptions.ProviderError`
    when the provider fails; they never return half a reply as if it were whole."""

    name: str
    """The deployment name this model serves under."""

    @abc.abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Run the model; yield text and tool-call fragments, then exactly one :class:`Finish`."""

    def check(self, request: ModelRequest) -> None:  # noqa: B027 - optional hook
        """Raise :class:`cupola.exceptions.UserError` now for a request this model would
        refuse, so the client gets a 400 before any response starts (default: none)."""

    async def count_tokens(self, request: ModelRequest) -> int | None:
        """The exact input tokens of ``request`` (its tokenizer, or the provider's counting
        endpoint), or None when this model cannot count them."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release clients and native resources."""


@dataclass(slots=True)
class ModelResult:
    """A whole reply, gathered from a stream by :func:`complete`."""

    text: str
    tool_calls: list[ToolCall]
    finish: Finish


class ToolCallAssembler:
    """Joins :class:`ToolCallDelta` fragments into whole :class:`ToolCall` objects."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._args: dict[int, list[str]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        if delta.call_id:
            self._ids[delta.index] = delta.call_id
        if delta.name:
            self._names[delta.index] = delta.name
        self._args.setdefault(delta.index, []).append(delta.arguments)

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(
                call_id=self._ids.get(i, f"call_{i}"),
                name=self._names.get(i, ""),
                arguments="".join(self._args[i]),
            )
            for i in sorted(self._args)
        ]


async def complete(model: Model, request: ModelRequest) -> ModelResult:
    """Run ``model`` to the end and return the whole reply."""
    text: list[str] = []
    calls = ToolCallAssembler()
    finish: Finish | None = None
    async for event in model.stream(request):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            calls.add(event)
        else:
            finish = event
    if finish is None:
        from cupola.exceptions import ProviderError

        raise ProviderError(f"model {model.name!r} ended its reply without finishing")
    return ModelResult(text="".join(text), tool_calls=calls.calls(), finish=finish)
