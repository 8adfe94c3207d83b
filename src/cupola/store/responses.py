"""Stored responses: the response object, its input items, and the conversation they extend."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cupola.domain import StoredResponse
from cupola.domain.records import Item
from cupola.exceptions import NotFound
from cupola.store.base import SqlBase
from cupola.store.conversations import append_items, conversation_row, history
from cupola.store.tables import conversation_items, responses

MAX_CHAIN = 10_000
_INSERT = responses.insert()  # built once: the hot path skips statement construction


def _response_row(conn: sa.Connection, project: str, response_id: str) -> sa.Row[Any]:
    row = conn.execute(
        sa.select(responses).where(responses.c.id == response_id, responses.c.project == project)
    ).first()
    if row is None:
        raise NotFound(f"response {response_id!r} not found", param="response_id", code="not_found")
    return row


class ResponseStore(SqlBase):
    async def save_response(
        self,
        project: str,
        body: dict[str, Any],
        input_items: list[Item],
        *,
        append_to_conversation: list[Item] | None = None,
        new: bool = False,
    ) -> None:
        """Insert (``new``) or replace a response; in the same transaction, extend its
        conversation."""
        conversation = body.get("conversation")
        conversation_id = conversation["id"] if isinstance(conversation, dict) else None

        def run(conn: sa.Connection) -> None:
            if conversation_id and append_to_conversation:
                conversation_row(conn, project, conversation_id)
                append_items(conn, conversation_id, append_to_conversation)
            values = dict(
                project=project,
                status=body["status"],
                previous_response_id=body.get("previous_response_id"),
                conversation_id=conversation_id,
                body=body,
                input_items=input_items,
                created_at=body["created_at"],
            )
            if new:
                conn.execute(_INSERT, {"id": body["id"], **values})
                return
            updated = conn.execute(
                responses.update().where(responses.c.id == body["id"]).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(responses.insert().values(id=body["id"], **values))

        await self._write(run)

    async def get_response(self, project: str, response_id: str) -> StoredResponse:
        def run(conn: sa.Connection) -> StoredResponse:
            row = _response_row(conn, project, response_id)
            return StoredResponse(body=row.body, input_items=row.input_items)

        return await self._read(run)

    async def list_conversation_responses(
        self, project: str, conversation_id: str, *, limit: int = 1000
    ) -> list[StoredResponse]:
        """The stored responses of a conversation, oldest first (at most ``limit``); raises
        :class:`NotFound` when the conversation does not exist."""

        def run(conn: sa.Connection) -> list[StoredResponse]:
            conversation_row(conn, project, conversation_id)
            found = conn.execute(
                sa.select(responses.c.body, responses.c.input_items, responses.c.created_at)
                .where(
                    responses.c.project == project,
                    responses.c.conversation_id == conversation_id,
                )
                .order_by(responses.c.created_at, responses.c.id)
                .limit(limit)
            )
            rows = list(found)
            # created_at is in seconds: turns of one second are ordered by where their
            # output items sit in the conversation
            items = sa.select(conversation_items.c.id, conversation_items.c.seq).where(
                conversation_items.c.conversation_id == conversation_id
            )
            seq: dict[str, int] = {r.id: r.seq for r in conn.execute(items)}

            def place(row: Any) -> tuple[int, int]:
                ids = [i.get("id") for i in row.body.get("output") or [] if isinstance(i, dict)]
                return row.created_at, min((seq[i] for i in ids if i in seq), default=1 << 62)

            rows.sort(key=place)
            return [StoredResponse(body=r.body, input_items=r.input_items) for r in rows]

        return await self._read(run)

    async def delete_response(self, project: str, response_id: str) -> None:
        def run(conn: sa.Connection) -> None:
            _response_row(conn, project, response_id)
            conn.execute(responses.delete().where(responses.c.id == response_id))

        await self._write(run)

    async def load_context(
        self,
        project: str,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
    ) -> list[Item]:
        """The items a new turn continues from: a conversation's items, or the chain of
        inputs and outputs behind ``previous_response_id``, oldest first."""
        if not conversation_id and not previous_response_id:
            return []

        def run(conn: sa.Connection) -> list[Item]:
            items: list[Item] = []
            if conversation_id:
                items = history(conn, project, conversation_id)
            if previous_response_id:
                items += chain(conn, project, previous_response_id)
            return items

        return await self._read(run)


def chain(conn: sa.Connection, project: str, response_id: str) -> list[Item]:
    """Inputs and outputs of a response and all its predecessors, oldest first."""
    turns: list[list[Item]] = []
    current: str | None = response_id
    while current is not None and len(turns) < MAX_CHAIN:
        row = _response_row(conn, project, current)
        turns.append([*row.input_items, *row.body.get("output", [])])
        current = row.previous_response_id
    return [item for turn in reversed(turns) for item in turn]
