"""Conversations and their ordered items."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cupola.domain import Conversation, Page
from cupola.domain.records import Item
from cupola.exceptions import NotFound
from cupola.ids import now
from cupola.store.base import SqlBase, page_of, paginate
from cupola.store.tables import conversation_items, conversations


def conversation_row(conn: sa.Connection, project: str, conversation_id: str) -> Conversation:
    row = conn.execute(
        sa.select(conversations).where(
            conversations.c.id == conversation_id, conversations.c.project == project
        )
    ).first()
    if row is None:
        raise NotFound(
            f"conversation {conversation_id!r} not found", param="conversation", code="not_found"
        )
    return Conversation(id=row.id, metadata=row.metadata, created_at=row.created_at)


_INSERT_ITEM = conversation_items.insert()


def append_items(conn: sa.Connection, conversation_id: str, items: list[Item]) -> None:
    if items:
        created = now()
        conn.execute(
            _INSERT_ITEM,
            [
                {
                    "id": it["id"],
                    "conversation_id": conversation_id,
                    "data": it,
                    "created_at": created,
                }
                for it in items
            ],
        )


def history(conn: sa.Connection, project: str, conversation_id: str) -> list[Item]:
    """Every item of a conversation, oldest first."""
    conversation_row(conn, project, conversation_id)
    query = (
        sa.select(conversation_items.c.data)
        .where(conversation_items.c.conversation_id == conversation_id)
        .order_by(conversation_items.c.seq)
    )
    return [r.data for r in conn.execute(query)]


def _item_seq(conn: sa.Connection, conversation_id: str, item_id: str) -> int:
    seq = conn.execute(
        sa.select(conversation_items.c.seq).where(
            conversation_items.c.id == item_id,
            conversation_items.c.conversation_id == conversation_id,
        )
    ).scalar()
    if seq is None:
        raise NotFound(
            f"item {item_id!r} not found in conversation {conversation_id!r}", param="item_id"
        )
    return int(seq)


class ConversationStore(SqlBase):
    async def create_conversation(
        self, project: str, conversation_id: str, metadata: dict[str, str], items: list[Item]
    ) -> Conversation:
        created = now()

        def run(conn: sa.Connection) -> Conversation:
            conn.execute(
                conversations.insert().values(
                    id=conversation_id, project=project, metadata=metadata, created_at=created
                )
            )
            append_items(conn, conversation_id, items)
            return Conversation(id=conversation_id, metadata=metadata, created_at=created)

        return await self._write(run)

    async def get_conversation(self, project: str, conversation_id: str) -> Conversation:
        return await self._read(conversation_row, project, conversation_id)

    async def update_conversation(
        self, project: str, conversation_id: str, metadata: dict[str, str]
    ) -> Conversation:
        def run(conn: sa.Connection) -> Conversation:
            current = conversation_row(conn, project, conversation_id)
            conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(metadata=metadata)
            )
            return Conversation(id=current.id, metadata=metadata, created_at=current.created_at)

        return await self._write(run)

    async def delete_conversation(self, project: str, conversation_id: str) -> None:
        def run(conn: sa.Connection) -> None:
            conversation_row(conn, project, conversation_id)
            conn.execute(
                conversation_items.delete().where(
                    conversation_items.c.conversation_id == conversation_id
                )
            )
            conn.execute(conversations.delete().where(conversations.c.id == conversation_id))

        await self._write(run)

    async def add_conversation_items(
        self, project: str, conversation_id: str, items: list[Item]
    ) -> None:
        def run(conn: sa.Connection) -> None:
            conversation_row(conn, project, conversation_id)
            append_items(conn, conversation_id, items)

        await self._write(run)

    async def list_conversation_items(
        self,
        project: str,
        conversation_id: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
    ) -> Page[Item]:
        def run(conn: sa.Connection) -> Page[Item]:
            conversation_row(conn, project, conversation_id)
            cursor = _item_seq(conn, conversation_id, after) if after else None
            query = sa.select(conversation_items.c.data).where(
                conversation_items.c.conversation_id == conversation_id
            )
            rows, more = paginate(
                conn, query, conversation_items.c.seq, limit=limit, order=order, after=cursor
            )
            return page_of([r.data for r in rows], more)

        return await self._read(run)

    async def get_conversation_item(self, project: str, conversation_id: str, item_id: str) -> Item:
        def run(conn: sa.Connection) -> Item:
            conversation_row(conn, project, conversation_id)
            data: Any = conn.execute(
                sa.select(conversation_items.c.data).where(
                    conversation_items.c.id == item_id,
                    conversation_items.c.conversation_id == conversation_id,
                )
            ).scalar()
            if data is None:
                raise NotFound(
                    f"item {item_id!r} not found in conversation {conversation_id!r}",
                    param="item_id",
                )
            return dict(data)

        return await self._read(run)

    async def delete_conversation_item(
        self, project: str, conversation_id: str, item_id: str
    ) -> Conversation:
        def run(conn: sa.Connection) -> Conversation:
            conv = conversation_row(conn, project, conversation_id)
            _item_seq(conn, conversation_id, item_id)
            conn.execute(conversation_items.delete().where(conversation_items.c.id == item_id))
            return conv

        return await self._write(run)
