"""The runtime's view of server-side tools: which toolset owns a function the model calls,
and how a finished tool item is fed back to the model."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection

from cupola.domain.records import Item
from cupola.exceptions import UserError
from cupola.models.base import ChatMessage, FunctionSpec, ToolCall, Usage
from cupola.tools.base import Toolset
from cupola.tools.registry import render_item

MAX_ROUNDS = 16
"""Model calls one response may make while server-side tools keep being called."""
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cached_tokens + b.cached_tokens,
        a.reasoning_tokens + b.reasoning_tokens,
    )


SEPARATOR = "__"


class ServerFunctions:
    """The functions toolsets offer, each under a name unique among them: its own name, or
    ``<label>__<name>`` for every toolset sharing it (or sharing it with a name already
    ``taken``, such as a client function). The agent loop and the toolbox endpoint both
    name tools this way."""

    def __init__(self, toolsets: list[Toolset], taken: Collection[str] = ()) -> None:
        self.specs: list[FunctionSpec] = []
        """The offered functions, under their served names."""
        self._owner: dict[str, tuple[Toolset, FunctionSpec]] = {}
        self._labels = {t.label: t for t in toolsets}
        offered = [(t, spec) for t in toolsets for spec in t.functions()]
        counts = Counter(spec.name for _, spec in offered)
        for toolset, spec in offered:
            name = spec.name
            if counts[name] > 1 or name in taken:
                name = _UNSAFE.sub("_", f"{toolset.label}{SEPARATOR}{spec.name}")[:64]
            self._owner[name] = (toolset, spec)
            self.specs.append(FunctionSpec(name, spec.description, spec.parameters, spec.strict))

    def get(self, name: str) -> tuple[Toolset, FunctionSpec] | None:
        """The toolset serving ``name`` and the tool's own spec."""
        return self._owner.get(name)

    def owns(self, name: str | None) -> bool:
        return name is not None and name in self._owner

    def resolve(self, call: ToolCall) -> tuple[Toolset, ToolCall]:
        """The toolset of a call, and the call under the tool's own name."""
        toolset, spec = self._owner[call.name]
        return toolset, ToolCall(call.call_id, spec.name, call.arguments)

    def by_label(self, label: str) -> Toolset:
        toolset = self._labels.get(label)
        if toolset is None:
            raise UserError(
                f"the approved call belongs to server {label!r}, which this request does not use",
                param="input",
                code="invalid_approval",
            )
        return toolset


def rendered_messages(call: ToolCall, item: Item) -> list[ChatMessage]:
    """A finished tool item as an assistant call and the tool's reply."""
    rendered = render_item(item)
    output = rendered.output if rendered is not None else str(item.get("error") or "")
    return [
        ChatMessage("assistant", tool_calls=(call,)),
        ChatMessage("tool", output, tool_call_id=call.call_id, name=call.name),
    ]
