"""Deterministic models for tests and demos, configurable from cupola.yaml.

``ScriptedModel`` in ``echo`` mode replies with a rendering of exactly the input it was given
(one line per message), so a test can read the history the model saw. In ``script`` mode it
plays canned replies and tool calls, each chosen by a regular expression matched against
the last user, assistant or tool message (instructions, even mid-conversation, are skipped).
A script is strict: a request no step fits raises :class:`ScriptMismatch` (give a last step
without ``match`` for a catch-all), so a test never passes on a reply it did not script.
Every request the model is given is kept in :attr:`ScriptedModel.calls`. It never touches
the network.
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from cupola.exceptions import ProviderError
from cupola.models.base import (
    ChatMessage,
    Finish,
    FinishReason,
    Model,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)

_WORD = re.compile(r"\S+\s*")


def render_message(message: ChatMessage) -> str:
    """One line for one message: ``role: content`` (newlines shown as `` / ``)."""
    head: str = message.role
    if message.role == "tool":
        head = f"tool[{message.name or ''}#{message.tool_call_id or ''}]"
    parts = [message.content.replace("\n", " / ")] if message.content else []
    parts += [f"call {c.name}({c.arguments})" for c in message.tool_calls]
    return f"{head}: {' ; '.join(parts)}"


def render_input(messages: Iterable[ChatMessage]) -> str:
    """The echo reply: every message the model was given, in order, one per line."""
    return "\n".join(render_message(m) for m in messages)


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """A tool call a script makes."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(self.arguments).decode()


@dataclass(frozen=True, slots=True)
class ScriptedStep:
    """One canned turn: used when ``match`` (a regex) is found in the last input message."""

    match: str | None = None
    reply: str | None = None
    tool_calls: tuple[ScriptedCall, ...] = ()

    def fits(self, last: str) -> bool:
        return self.match is None or re.search(self.match, last) is not None


class ScriptMismatch(ProviderError):
    """A scripted deployment was given a request none of its steps fits. The response that
    asked fails with code ``script_mismatch`` (a Chat Completions or Messages request answers
    400); it is never retried."""

    status_code = 400

    def __init__(self, model: str, last: str, patterns: Sequence[str | None]) -> None:
        shown = last if len(last) <= 200 else last[:200] + "…"
        listed = ", ".join(repr(p) for p in patterns) or "none: the script is empty"
        super().__init__(
            f"scripted deployment {model!r} has no step for the last message {shown!r} "
            f"(its steps match: {listed}); add a step whose match fits, or a last step "
            "without match as a catch-all",
            code="script_mismatch",
        )
        self.last = last

    @property
    def retryable(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request a :class:`ScriptedModel` was given, and the step that answered it (None in
    ``echo`` mode, or when no step fitted and the call raised)."""

    request: ModelRequest
    step: ScriptedStep | None

    @property
    def last_message(self) -> str:
        """The text steps are matched against: the last non-instruction message."""
        return _last_said(self.request)


def _last_said(request: ModelRequest) -> str:
    said = [m for m in request.messages if m.role not in ("system", "developer")]
    return (said[-1].content or "") if said else ""


class ScriptedModel(Model):
    """A deterministic model: ``echo`` the input, or play a ``script`` of steps (strictly:
    a request no step fits raises :class:`ScriptMismatch`). :attr:`calls` records the
    requests, in order."""

    def __init__(
        self,
        name: str = "echo",
        *,
        mode: str = "echo",
        script: Sequence[ScriptedStep] = (),
        chunk_words: int = 1,
        keep_calls: int = 1000,
    ) -> None:
        self.name = name
        self.mode = mode
        self.script = tuple(script)
        self.chunk_words = max(1, chunk_words)
        self.calls: deque[RecordedCall] = deque(maxlen=keep_calls)
        """The requests given to :meth:`stream` (the last ``keep_calls``: a server may run a
        scripted deployment for days), in order, with the step that answered each."""

    def _choose(self, request: ModelRequest) -> ScriptedStep | None:
        """The step that answers ``request``: None in echo mode; raises
        :class:`ScriptMismatch` when no step of the script fits."""
        if self.mode != "script":
            return None
        last = _last_said(request)
        for step in self.script:
            if step.fits(last):
                return step
        raise ScriptMismatch(self.name, last, [step.match for step in self.script])

    async def count_tokens(self, request: ModelRequest) -> int | None:
        return count_tokens(render_input(request.messages))  # what its usage reports

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        try:
            chosen = self._choose(request)
        except ScriptMismatch:
            self.calls.append(RecordedCall(request, None))
            raise
        self.calls.append(RecordedCall(request, chosen))
        step = chosen if chosen is not None else ScriptedStep(reply=render_input(request.messages))
        prompt_tokens = count_tokens(render_input(request.messages))
        if request.tool_choice == "none":
            step = ScriptedStep(reply=step.reply if step.reply is not None else "")
        out_tokens = 0
        if step.reply:
            words = _WORD.findall(step.reply)
            limit = request.max_output_tokens
            truncated = limit is not None and len(words) > limit
            if truncated and limit is not None:
                words = words[:limit]
            for i in range(0, len(words), self.chunk_words):
                yield TextDelta("".join(words[i : i + self.chunk_words]))
            out_tokens += len(words)
            if truncated:
                yield Finish("length", Usage(prompt_tokens, out_tokens), self.name)
                return
        for index, call in enumerate(step.tool_calls):
            args = call.arguments_json()
            half = len(args) // 2
            call_id = f"call_{secrets.token_hex(12)}"
            yield ToolCallDelta(index, call_id=call_id, name=call.name, arguments=args[:half])
            yield ToolCallDelta(index, arguments=args[half:])
            out_tokens += count_tokens(args)
        reason: FinishReason = "tool_calls" if step.tool_calls else "stop"
        yield Finish(reason, Usage(prompt_tokens, out_tokens), self.name)
