"""API keys, stored only as SHA-256 digests of their secret, each scoped to one project with
one role."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import sqlalchemy as sa

from cupola.domain import ApiKey, Role
from cupola.exceptions import NotFound
from cupola.ids import new_id, now
from cupola.store.base import SqlBase
from cupola.store.tables import api_keys

KEY_PREFIX = "cpl-"


def digest(secret: str) -> str:
    # Keys are 256 random bits, so a fast hash is as strong as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


def _role(stored: str) -> Role:
    """A stored role; one this version does not know reads as the least one (reader)."""
    try:
        return Role.parse(stored)
    except ValueError:
        return Role.READER


def _key(row: sa.Row[Any], revoked_at: int | None = None) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=revoked_at if revoked_at is not None else row.revoked_at,
        project=row.project,
        role=_role(row.role),
    )


class KeyStore(SqlBase):
    def create_key_sync(
        self, name: str, project: str = "default", role: Role = Role.USER
    ) -> tuple[ApiKey, str]:
        """A new key of ``project`` with ``role``, and its secret; the secret is shown once
        and never stored."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=new_id("key")[:28],
            name=name,
            prefix=secret[:10],
            created_at=now(),
            project=project,
            role=role,
        )

        def run(conn: sa.Connection) -> None:
            conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    name=name,
                    prefix=key.prefix,
                    secret_hash=digest(secret),
                    created_at=key.created_at,
                    project=project,
                    role=role.label,
                )
            )

        self.write_sync(run)
        return key, secret

    def list_keys_sync(self) -> list[ApiKey]:
        def run(conn: sa.Connection) -> list[ApiKey]:
            return [
                _key(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))
            ]

        return self.read_sync(run)

    def revoke_key_sync(self, key_id_or_name: str) -> ApiKey:
        def run(conn: sa.Connection) -> ApiKey:
            row = conn.execute(
                sa.select(api_keys).where(
                    sa.or_(api_keys.c.id == key_id_or_name, api_keys.c.name == key_id_or_name),
                    api_keys.c.revoked_at.is_(None),
                )
            ).first()
            if row is None:
                raise NotFound(f"no active key named or with id {key_id_or_name!r}")
            revoked = now()
            conn.execute(
                api_keys.update().where(api_keys.c.id == row.id).values(revoked_at=revoked)
            )
            return _key(row, revoked)

        return self.write_sync(run)

    async def verify_key(self, secret: str) -> ApiKey | None:
        """The active key with this secret (with its project and role), or None."""

        def run(conn: sa.Connection) -> ApiKey | None:
            row = conn.execute(
                sa.select(api_keys).where(
                    api_keys.c.secret_hash == digest(secret), api_keys.c.revoked_at.is_(None)
                )
            ).first()
            return _key(row) if row is not None else None

        return await self._read(run)
