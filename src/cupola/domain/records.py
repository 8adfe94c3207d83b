"""Records as the store returns them. Items are kept in their wire shape (plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Item = dict[str, Any]
"""A Responses/Conversations item in its wire shape (``message``, ``function_call`` ...)."""


@dataclass(frozen=True, slots=True)
class AgentVersion:
    """One immutable, numbered version of an agent."""

    name: str
    version: int
    definition: dict[str, Any]
    description: str | None
    metadata: dict[str, str]
    created_at: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    metadata: dict[str, str]
    created_at: int


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response object (wire shape) and the input items it was created with."""

    body: dict[str, Any]
    input_items: list[Item]


class Role(IntEnum):
    """What an API key may do in its project, each role including the ones below it
    (Foundry's split: Azure AI reader, user, project contributor, project manager)."""

    READER = 1
    """Read anything: agents, responses, conversations, files, deployments, toolboxes."""
    USER = 2
    """Also run agents: responses, chat completions, messages, conversations, files,
    vector stores, toolbox endpoints."""
    CONTRIBUTOR = 3
    """Also change what runs: agent versions, toolboxes, connections."""
    ADMIN = 4
    """Also define tools that start processes (stdio MCP servers) and project settings."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Role:
        """A role from its name (``reader``, ``user``, ``contributor``, ``admin``)."""
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise ValueError(f"unknown role {value!r} (one of: {names})") from None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key: its secret is never kept, only a digest (in the store)."""

    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None = None
    project: str = "default"
    """The one project the key may be used on."""
    role: Role = Role.USER


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list."""

    data: list[T] = field(default_factory=list)
    has_more: bool = False
