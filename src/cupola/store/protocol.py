"""The Store protocol: what the runtime and the server need from persistence.

``SqlStore`` is the implementation; anything with these methods (an in-memory store for a
test, a caching wrapper) can stand in for it.
"""

from __future__ import annotations

from typing import Any, Protocol

from cupola.domain import AgentVersion, ApiKey, Conversation, Page, StoredResponse
from cupola.domain.records import Item
from cupola.domain.versions import Selector


class Store(Protocol):
    async def open(self) -> None:
        """Create or upgrade the schema."""

    async def close(self) -> None: ...

    async def create_agent_version(
        self,
        project: str,
        name: str,
        definition: dict[str, Any],
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> tuple[AgentVersion, bool]:
        """A new version, or the existing one with identical content (flag: created)."""

    async def get_agent_version(
        self, project: str, name: str, version: Selector = None
    ) -> AgentVersion:
        """The version a number or label names, or the latest; raises NotFound."""

    async def list_agents(
        self,
        project: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page[AgentVersion]: ...

    async def list_agent_versions(
        self,
        project: str,
        name: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: int | None = None,
        before: int | None = None,
    ) -> Page[AgentVersion]: ...

    async def delete_agent_version(self, project: str, name: str, version: int) -> None: ...

    async def delete_agent(self, project: str, name: str) -> None: ...

    async def create_conversation(
        self, project: str, conversation_id: str, metadata: dict[str, str], items: list[Item]
    ) -> Conversation: ...

    async def get_conversation(self, project: str, conversation_id: str) -> Conversation: ...

    async def update_conversation(
        self, project: str, conversation_id: str, metadata: dict[str, str]
    ) -> Conversation: ...

    async def delete_conversation(self, project: str, conversation_id: str) -> None: ...

    async def add_conversation_items(
        self, project: str, conversation_id: str, items: list[Item]
    ) -> None: ...

    async def list_conversation_items(
        self,
        project: str,
        conversation_id: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
    ) -> Page[Item]: ...

    async def get_conversation_item(
        self, project: str, conversation_id: str, item_id: str
    ) -> Item: ...

    async def delete_conversation_item(
        self, project: str, conversation_id: str, item_id: str
    ) -> Conversation: ...

    async def save_response(
        self,
        project: str,
        body: dict[str, Any],
        input_items: list[Item],
        *,
        append_to_conversation: list[Item] | None = None,
        new: bool = False,
    ) -> None:
        """Insert (``new``) or replace a response and, atomically, extend its conversation."""

    async def get_response(self, project: str, response_id: str) -> StoredResponse: ...

    async def list_conversation_responses(
        self, project: str, conversation_id: str, *, limit: int = 1000
    ) -> list[StoredResponse]:
        """A conversation's stored responses, oldest first."""

    async def delete_response(self, project: str, response_id: str) -> None: ...

    async def load_context(
        self,
        project: str,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
    ) -> list[Item]:
        """History a new turn continues from, oldest first."""

    async def verify_key(self, secret: str) -> ApiKey | None: ...
