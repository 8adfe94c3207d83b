"""Connections, with their secrets encrypted by a :class:`~cupola.secrets.SecretBox`.

The store only ever holds ciphertext; :meth:`ConnectionStore.get_connection` and
:meth:`ConnectionStore.list_connections` return records without the secret, and only
:class:`ConnectionSecrets` (the runtime's :class:`~cupola.secrets.SecretResolver`)
decrypts one, to build the headers a tool call sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
import sqlalchemy as sa

from cupola.domain.connections import (
    Connection,
    check_connection,
    check_connection_name,
    check_secret,
    credential_headers,
)
from cupola.exceptions import ConfigError, NotFound
from cupola.ids import new_id, now
from cupola.secrets import SecretBox
from cupola.store.base import SqlBase
from cupola.store.tables import connections

if TYPE_CHECKING:
    from cupola.secrets import SecretResolver

_CONNECTIONS_SEGMENT = "/connections/"


def _connection(row: sa.Row[Any]) -> Connection:
    return Connection(
        name=row.name,
        id=row.id,
        type=row.type,
        target=row.target,
        credential_type=row.credential_type,
        metadata=dict(row.metadata or {}),
        is_default=bool(row.is_default),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _find_row(conn: sa.Connection, project: str, name_or_id: str) -> sa.Row[Any]:
    """The row named ``name_or_id``, else the one with that id, else (for Foundry-style
    resource ids ``.../connections/<name>``) the one named by the last segment."""
    candidates = [name_or_id]
    if _CONNECTIONS_SEGMENT in name_or_id:
        candidates.append(name_or_id.rsplit(_CONNECTIONS_SEGMENT, 1)[1].strip("/"))
    for candidate in candidates:
        for column in (connections.c.name, connections.c.id):
            row = conn.execute(
                sa.select(connections).where(connections.c.project == project, column == candidate)
            ).first()
            if row is not None:
                return row
    raise NotFound(
        f"connection {name_or_id[:200]!r} not found", param="connection", code="not_found"
    )


class ConnectionStore(SqlBase):
    """Named credentials per project. :meth:`use_secret_box` must be called before a secret
    is stored or read (``build_services`` does it from the settings)."""

    _secret_box: SecretBox | None = None

    def use_secret_box(self, box: SecretBox) -> None:
        """Encrypt and decrypt connection secrets with ``box`` from now on."""
        self._secret_box = box

    @property
    def has_secret_box(self) -> bool:
        return self._secret_box is not None

    @property
    def secret_box(self) -> SecretBox:
        if self._secret_box is None:
            raise ConfigError(
                "connection secrets need a key: call store.use_secret_box(SecretBox.from_settings"
                "(settings)) before using connections",
                code="secret_key_missing",
            )
        return self._secret_box

    async def create_or_replace_connection(
        self,
        project: str,
        name: str,
        *,
        type: str,
        target: str,
        credential_type: str,
        secret: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        is_default: bool = False,
    ) -> tuple[Connection, bool]:
        """Store a connection (its secret encrypted), replacing one of the same name but
        keeping its id. ``is_default`` clears the flag on the project's other connections of
        the same type. The flag is True when the connection is new."""
        meta = dict(metadata or {})
        check_connection_name(name)
        check_connection(type, target, meta, credential_type)
        check_secret(credential_type, secret)
        ciphertext = None
        if secret:  # off the event loop (the key file may be created), outside the transaction
            ciphertext = await anyio.to_thread.run_sync(self.secret_box.encrypt, secret)

        def run(conn: sa.Connection) -> tuple[Connection, bool]:
            stamp = now()
            existing = conn.execute(
                sa.select(connections.c.id, connections.c.created_at)
                .where(connections.c.project == project, connections.c.name == name)
                .with_for_update()
            ).first()
            values: dict[str, Any] = dict(
                type=type,
                target=target,
                credential_type=credential_type,
                secret=ciphertext,
                metadata=meta,
                is_default=is_default,
                updated_at=stamp,
            )
            if is_default:
                conn.execute(
                    connections.update()
                    .where(
                        connections.c.project == project,
                        connections.c.type == type,
                        connections.c.name != name,
                        connections.c.is_default.is_(True),
                    )
                    .values(is_default=False, updated_at=stamp)
                )
            if existing is None:
                ident, created_at = new_id("conn"), stamp
                conn.execute(
                    connections.insert().values(
                        project=project, name=name, id=ident, created_at=created_at, **values
                    )
                )
            else:
                ident, created_at = existing.id, existing.created_at
                conn.execute(
                    connections.update()
                    .where(connections.c.project == project, connections.c.name == name)
                    .values(**values)
                )
            return (
                Connection(
                    name=name,
                    id=ident,
                    type=type,
                    target=target,
                    credential_type=credential_type,
                    metadata=meta,
                    is_default=is_default,
                    created_at=created_at,
                    updated_at=stamp,
                ),
                existing is None,
            )

        try:
            return await self._write(run)
        except sa.exc.IntegrityError:
            # A concurrent create of the same name won the race: replace it.
            return await self._write(run)

    async def get_connection(self, project: str, name_or_id: str) -> Connection:
        """A connection by name or id, without its secret; raises NotFound."""
        return await self._read(lambda conn: _connection(_find_row(conn, project, name_or_id)))

    async def list_connections(
        self,
        project: str,
        *,
        connection_type: str | None = None,
        default_only: bool = False,
    ) -> list[Connection]:
        """A project's connections by name, optionally of one type or only defaults."""

        def run(conn: sa.Connection) -> list[Connection]:
            query = sa.select(connections).where(connections.c.project == project)
            if connection_type:
                query = query.where(connections.c.type == connection_type)
            if default_only:
                query = query.where(connections.c.is_default.is_(True))
            return [_connection(r) for r in conn.execute(query.order_by(connections.c.name))]

        return await self._read(run)

    async def delete_connection(self, project: str, name_or_id: str) -> Connection:
        """Delete a connection (and its secret); returns what was deleted."""

        def run(conn: sa.Connection) -> Connection:
            row = _find_row(conn, project, name_or_id)
            conn.execute(
                connections.delete().where(
                    connections.c.project == project, connections.c.name == row.name
                )
            )
            return _connection(row)

        return await self._write(run)

    async def get_connection_secret(
        self, project: str, name_or_id: str
    ) -> tuple[Connection, dict[str, Any] | None]:
        """A connection and its decrypted secret. Only for building outbound credentials:
        never put the secret in a response, an item, a log line or a trace."""

        def run(conn: sa.Connection) -> tuple[Connection, dict[str, Any] | None]:
            row = _find_row(conn, project, name_or_id)
            secret = self.secret_box.decrypt(row.secret) if row.secret else None
            return _connection(row), secret

        return await self._read(run)


class ConnectionSecrets:
    """The runtime's :class:`SecretResolver`: a ``project_connection_id`` (name or id) to
    the headers carrying its credential. Every value it returns is registered for log
    redaction (by the store's :class:`SecretBox`)."""

    def __init__(self, store: ConnectionStore) -> None:
        self.store = store

    async def headers_for(self, project: str, connection: str) -> dict[str, str]:
        found, secret = await self.store.get_connection_secret(project, connection)
        headers = credential_headers(found.credential_type, secret, found.metadata)
        if headers:
            self.store.secret_box.registry.add(*headers.values())
        return headers


if TYPE_CHECKING:

    def _is_a_secret_resolver(secrets: ConnectionSecrets) -> SecretResolver:
        return secrets
