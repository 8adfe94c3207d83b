"""The records a hook is given: the run, each model call and its end, each tool call, the
run's end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cupola.domain.records import Item
from cupola.models.base import CallReport, Finish, ModelRequest, ToolCall, Usage

Api = Literal["responses", "chat.completions", "messages"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run a hook is called for."""

    response_id: str
    """The response's id (Chat Completions and Messages runs have one too, never shown)."""
    project: str
    api: Api
    """The protocol the client called."""
    model: str
    """The deployment the run calls (as requested: wrappers may serve it from another)."""
    agent: str | None
    """The agent's name, when the request named one."""
    conversation_id: str | None
    stream: bool
    background: bool
    store: bool
    input_items: tuple[Item, ...]
    """The items this request added (history from earlier turns excluded)."""
    agent_version: str | None = None
    """The agent version the run uses, when the runtime knows it (None otherwise)."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One call of the model within a run."""

    run: RunInfo
    index: int
    """0 for the run's first call, 1 for the call after the first tool results ..."""
    request: ModelRequest
    """What the model is sent (messages, tools, sampling)."""
    started: float
    """``time.perf_counter()`` when the call began."""


@dataclass(frozen=True, slots=True)
class ModelEnd:
    """How a model call ended: ``finish`` when it succeeded, else ``error``."""

    finish: Finish | None
    error: Exception | None
    ms: float
    """Wall time of the call, in milliseconds."""
    first_token_ms: float | None = None
    """Milliseconds from the call's start to its first text or tool-call fragment, when the
    runtime measured it (None otherwise)."""


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One server-side tool call (an MCP call, a code interpreter run, a file search ...)."""

    run: RunInfo
    call: ToolCall
    """The call as the model made it (name as served, arguments as JSON text)."""
    approved: bool = False
    """True when the client approved it in this request (an MCP approval response)."""


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A finished run."""

    status: str
    """``completed``, ``incomplete``, ``failed`` or ``cancelled``."""
    output: tuple[Item, ...]
    usage: Usage
    reports: tuple[CallReport, ...]
    """The report of every model call, in order (the response metadata shows the last)."""
    error: Exception | None = None
    """What ended a failed run."""
    ms: float = 0.0
    """Wall time of the run, in milliseconds."""
