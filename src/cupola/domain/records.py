"""Records as the store returns them. Items are kept in their wire shape (plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None = None


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list."""

    data: list[T] = field(default_factory=list)
    has_more: bool = False
