"""Turning a model's event stream into output items and Responses SSE events."""

from __future__ import annotations

from typing import Any

from cupola.domain.records import Item
from cupola.ids import new_id
from cupola.models.base import TextDelta, ToolCall, ToolCallDelta
from cupola.tools.namespace import served_name

Event = dict[str, Any]


class EventLog:
    """Numbers events in order. When not streaming, deltas are not built at all."""

    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self.sequence = 0
        self.pending: list[Event] = []

    def emit(self, kind: str, **fields: Any) -> None:
        if self.streaming:
            self.pending.append({"type": kind, "sequence_number": self.sequence, **fields})
            self.sequence += 1

    def drain(self) -> list[Event]:
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
        self.log.emit("response.output_item.added", output_index=self._index(item), item=dict(item))

    def text(self, delta: TextDelta) -> None:
        if self._message is None:
            self._message = {
                "id": new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._add(self._message)
            self.log.emit(
                "response.content_part.added",
                item_id=self._message["id"],
                output_index=self._index(self._message),
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        self._text.append(delta.text)
        self._round_text.append(delta.text)
        self.log.emit(
            "response.output_text.delta",
            item_id=self._message["id"],
            output_index=self._index(self._message),
            content_index=0,
            delta=delta.text,
            logprobs=[],
        )

    def add(self, item: Item) -> None:
        """A finished item made by the platform (a server tool's call, a tool listing)."""
        self.items.append(item)
        index = self._index(item)
        self.log.emit(
            "response.output_item.added", output_index=index, item={**item, "status": "in_progress"}
        )
        self.log.emit("response.output_item.done", output_index=index, item=dict(item))

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
            self.log.emit(
                "response.function_call_arguments.delta",
                item_id=call["id"],
                output_index=self._index(call),
                delta=delta.arguments,
            )

    def _close_message(self, status: str) -> None:
        message = self._message
        if message is None:
            return
        self._message = None
        text = "".join(self._text)
        self._text = []
        index = self._index(message)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        self.log.emit(
            "response.output_text.done",
            item_id=message["id"],
            output_index=index,
            content_index=0,
            text=text,
            logprobs=[],
        )
        self.log.emit(
            "response.content_part.done",
            item_id=message["id"],
            output_index=index,
            content_index=0,
            part=part,
        )
        message["content"] = [{"type": "output_text", "text": text, "annotations": []}]
        message["status"] = status
        self.log.emit("response.output_item.done", output_index=index, item=dict(message))

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
            position = self._index(call)
            self.log.emit(
                "response.function_call_arguments.done",
                item_id=call["id"],
                output_index=position,
                arguments=call["arguments"],
            )
            self.log.emit("response.output_item.done", output_index=position, item=dict(call))
        self._calls.clear()
        return self.items
