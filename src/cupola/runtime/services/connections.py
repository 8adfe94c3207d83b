"""Connections: storing one (its secret encrypted) with every check, whoever asks."""

from __future__ import annotations

from typing import Any

from cupola.domain.connections import Connection, check_connection_name, check_credentials
from cupola.exceptions import UserError
from cupola.store import SqlStore


class ConnectionService:
    """Creates and replaces a project's connections (reads and deletes are the store's)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def put(
        self,
        project: str,
        name: str,
        *,
        type: str,
        target: str,
        credentials: Any,
        metadata: dict[str, str] | None = None,
        is_default: bool = False,
        named: str | None = None,
    ) -> tuple[Connection, bool]:
        """Create or replace connection ``name`` (``created`` is True when it is new).
        ``named`` is a name the body repeats, which must be ``name``. Refuses (400) a bad
        name and credentials that are not an object with a known type."""
        name = check_connection_name(name)
        if named is not None and named != name:
            raise UserError(
                "name in the body differs from the name in the path",
                param="name",
                code="invalid_value",
            )
        credential_type, secret = check_credentials(credentials)
        return await self.store.create_or_replace_connection(
            project,
            name,
            type=type,
            target=target,
            credential_type=credential_type,
            secret=secret,
            metadata=metadata or {},
            is_default=is_default,
        )
