"""A run's typed events and its outcome, and the assembler that builds output items (and
their events) from a model's event stream.

A run yields :data:`RunEvent` values while it goes (only when the request streams: a run
that does not stream builds none of them) and ends with one :class:`RunOutcome`. The server
renders them per protocol (server/render/: Responses SSE, Chat Completions chunks, Anthropic
events); nothing here knows a wire format.

The events, in the order a run yields them:

- :class:`StatusChanged` ``created`` then ``in_progress`` (stored Responses runs only);
- per output item: :class:`ItemAdded`, then for an assistant message its
  :class:`TextDelta` pieces and one :class:`TextDone`, for a function call its
  :class:`ArgumentsDelta` pieces and one :class:`ArgumentsDone`, then :class:`ItemDone`.
  Items the platform makes whole (a server tool's call, a tool listing, an approval
  request) come as :class:`ItemAdded` (status ``in_progress``) and :class:`ItemDone` at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cupola.domain.records import Item
from cupola.exceptions import ErrorInfo
from cupola.ids import new_id
from cupola.models.base import CallReport, ToolCall, ToolCallDelta, Usage
from cupola.models.base import TextDelta as ModelText
from cupola.runtime.items import text_of
from cupola.tools.namespace import served_name


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """The response was created (``status`` queued or in_progress) or began to run."""

    kind: Literal["created", "in_progress"]
    response: dict[str, Any]
    """A snapshot of the response body at that moment."""


@dataclass(frozen=True, slots=True)
class ItemAdded:
    """An output item begins (a snapshot: the item goes on changing until :class:`ItemDone`)."""

    index: int
    item: Item


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of an assistant message's text."""

    item_id: str
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class TextDone:
    """An assistant message's whole text."""

    item_id: str
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ArgumentsDelta:
    """A piece of a function call's arguments (JSON text)."""

    item_id: str
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class ArgumentsDone:
    item_id: str
    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ItemDone:
    """An output item is final."""

    index: int
    item: Item


RunEvent = (
    StatusChanged | ItemAdded | TextDelta | TextDone | ArgumentsDelta | ArgumentsDone | ItemDone
)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended: the last value of its event stream."""

    status: str
    """``completed``, ``incomplete`` or ``failed``."""
    output: list[Item]
    usage: Usage
    reports: tuple[CallReport, ...]
    """Every model call's report, in order."""
    incomplete_reason: str | None = None
    """``max_output_tokens`` (also for an item past ``server.max_item_bytes``) or
    ``max_tool_calls``."""
    error: ErrorInfo | None = None
    """What failed a ``failed`` run."""
    response: dict[str, Any] | None = None
    """The response body, for a run of the Responses API (final: stored as it is)."""

    def texts(self) -> list[str]:
        """The text of each assistant message, in order."""
        return [
            text_of(item.get("content")) for item in self.output if item.get("type") == "message"
        ]

    def calls(self) -> list[ToolCall]:
        """The client function calls the run ended with."""
        return [
            ToolCall(item["call_id"], item["name"], item["arguments"])
            for item in self.output
            if item.get("type") == "function_call"
        ]


class EventLog:
    """Collects a run's events until the loop yields them. When not streaming, none is
    built: callers test :attr:`streaming` before building one."""

    __slots__ = ("streaming", "pending")

    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self.pending: list[RunEvent] = []

    def drain(self) -> list[RunEvent]:
        out, self.pending = self.pending, []
        return out


class OutputAssembler:
    """Builds output items (an assistant message, function calls) from model events."""

    def __init__(self, log: EventLog, first_index: int = 0) -> None:
        self.log = log
        self.items: list[Item] = []
        self._first_index = first_index
        self._message: Item | None = None
        self._text: list[str] = []
        self._calls: dict[int, Item] = {}
        self._args: dict[int, list[str]] = {}
        self._server: dict[int, list[str]] = {}
        """Calls of server-side tools in this round: index -> [call_id, name, *fragments]."""
        self._round_text: list[str] = []
        self.namespaced: dict[str, tuple[str, str]] = {}
        """Served name -> (namespace, name): a call of a namespace tool's function is named
        as the client declared it, with its ``namespace``."""

    def _index(self, item: Item) -> int:
        return self._first_index + self.items.index(item)

    def _add(self, item: Item) -> None:
        self.items.append(item)
        if self.log.streaming:
            self.log.pending.append(ItemAdded(self._index(item), dict(item)))

    def text(self, delta: ModelText) -> None:
        if self._message is None:
            self._message = {
                "id": new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._add(self._message)
        self._text.append(delta.text)
        self._round_text.append(delta.text)
        if self.log.streaming:
            message = self._message
            self.log.pending.append(TextDelta(message["id"], self._index(message), delta.text))

    def add(self, item: Item) -> None:
        """A finished item made by the platform (a server tool's call, a tool listing)."""
        self.items.append(item)
        if self.log.streaming:
            index = self._index(item)
            self.log.pending.append(ItemAdded(index, {**item, "status": "in_progress"}))
            self.log.pending.append(ItemDone(index, dict(item)))

    def tool_call(self, delta: ToolCallDelta, *, server: bool = False) -> None:
        """A fragment of a call; calls of server-side tools are kept back until the round ends
        (the server runs them and adds their own items)."""
        self._close_message("completed")
        if server or delta.index in self._server:
            parts = self._server.setdefault(
                delta.index, [delta.call_id or new_id("call"), delta.name or ""]
            )
            parts.append(delta.arguments)
            return
        call = self._calls.get(delta.index)
        if call is None:
            call = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": delta.call_id or new_id("call"),
                "name": delta.name or "",
                "arguments": "",
            }
            if call["name"] in self.namespaced:
                call["namespace"], call["name"] = self.namespaced[call["name"]]
            self._calls[delta.index] = call
            self._args[delta.index] = []
            self._add(call)
        if delta.arguments:
            self._args[delta.index].append(delta.arguments)
            if self.log.streaming:
                self.log.pending.append(
                    ArgumentsDelta(call["id"], self._index(call), delta.arguments)
                )

    def _close_message(self, status: str) -> None:
        message = self._message
        if message is None:
            return
        self._message = None
        text = "".join(self._text)
        self._text = []
        message["content"] = [{"type": "output_text", "text": text, "annotations": []}]
        message["status"] = status
        if self.log.streaming:
            index = self._index(message)
            self.log.pending.append(TextDone(message["id"], index, text))
            self.log.pending.append(ItemDone(index, dict(message)))

    def end_round(self, status: str = "completed") -> tuple[str, list[ToolCall], list[ToolCall]]:
        """Close this model turn: its text, its client function calls and its server calls."""
        text = "".join(self._round_text)
        client = [
            ToolCall(
                c["call_id"],
                served_name(c.get("namespace"), c["name"]),
                "".join(self._args[i]) or "{}",
            )
            for i, c in sorted(self._calls.items())
        ]
        server = [
            ToolCall(parts[0], parts[1], "".join(parts[2:]) or "{}")
            for _, parts in sorted(self._server.items())
        ]
        self.finish(status)
        self._server.clear()
        self._round_text = []
        return text, client, server

    def finish(self, status: str = "completed") -> list[Item]:
        """Close every open item; return the output items."""
        self._close_message(status)
        for index in sorted(self._calls):
            call = self._calls[index]
            call["arguments"] = "".join(self._args[index]) or "{}"
            call["status"] = status
            if self.log.streaming:
                position = self._index(call)
                self.log.pending.append(ArgumentsDone(call["id"], position, call["arguments"]))
                self.log.pending.append(ItemDone(position, dict(call)))
        self._calls.clear()
        return self.items
