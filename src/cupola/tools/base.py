"""Server-side tools: the platform runs them and records every call as an output item.

A :class:`Toolset` is one entry of an agent's ``tools`` that the server executes (an MCP
server, a toolbox, the code interpreter, file search, an OpenAPI spec). It tells the model
which functions it offers, runs a call, and returns the finished item for the response
(``mcp_call``, ``code_interpreter_call``, ``file_search_call``, ``openapi_call``). Failures
are data: a tool that times out, crashes or is unreachable gives an item with an ``error``,
and the run goes on.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cupola.domain.records import Item
from cupola.models.base import FunctionSpec, ToolCall
from cupola.secrets import SecretResolver as SecretResolver  # re-exported for toolsets

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What a function name may be (the Responses and Chat Completions rule)."""


def valid_function_name(name: object) -> bool:
    return isinstance(name, str) and FUNCTION_NAME.match(name) is not None


@dataclass(slots=True)
class ToolContext:
    """What a tool call may know about the request it runs for."""

    project: str
    response_id: str
    conversation_id: str | None
    data_dir: Path
    history: list[Item] = field(default_factory=list)
    """Items before this response (conversation or previous responses), oldest first."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """How a finished tool item appears to the model: its call, and what came back."""

    call: ToolCall
    output: str


class Toolset(abc.ABC):
    """One server-side tool entry of an agent or request."""

    label: str
    """Unique among a response's toolsets (an MCP ``server_label``, or the tool type)."""

    async def start(self, ctx: ToolContext) -> list[Item]:
        """Prepare before the first model call (connect, list tools). Returns items for the
        response's output, e.g. ``mcp_list_tools`` the first time a conversation meets a
        server."""
        return []

    @abc.abstractmethod
    def functions(self) -> list[FunctionSpec]:
        """The functions the model may call (after :meth:`start`)."""

    def requires_approval(self, call: ToolCall) -> bool:
        """Whether this call must wait for the client's approval."""
        return False

    def approval_request(self, call: ToolCall) -> Item:
        """The item that asks the client to approve ``call``."""
        raise NotImplementedError(f"{type(self).__name__} never asks for approval")

    @abc.abstractmethod
    async def run(self, call: ToolCall, ctx: ToolContext, **extra: Any) -> Item:
        """Run a call; return the finished item (with ``error`` set when it failed)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release sessions or processes this toolset opened for one response."""
