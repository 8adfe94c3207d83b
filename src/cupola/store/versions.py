"""What agents and toolboxes share: immutable, numbered, content-addressed versions under a
parent row that keeps the next number (numbers are never reused)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import sqlalchemy as sa

from cupola.store.base import paginate


def content_hash(content: dict[str, Any], description: str | None, metadata: dict[str, str]) -> str:
    """The identity of a version's content: applying identical content again reuses it."""
    canonical = orjson.dumps(
        {"definition": content, "description": description, "metadata": metadata},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def same_content(
    conn: sa.Connection, versions: sa.Table, project: str, name: str, digest: str
) -> sa.Row[Any] | None:
    """The existing version with this content, if any."""
    return conn.execute(
        sa.select(versions).where(
            versions.c.project == project,
            versions.c.name == name,
            versions.c.content_hash == digest,
        )
    ).first()


def reserve_number(
    conn: sa.Connection,
    parent: sa.Table,
    project: str,
    name: str,
    *,
    first: dict[str, Any],
    bump: dict[str, Any] | None = None,
) -> int:
    """The next version number of ``name``, locking its parent row; a new parent row is
    inserted with ``first`` (its other columns), an existing one updated with ``bump``."""
    counter = conn.execute(
        sa.select(parent.c.next_version)
        .where(parent.c.project == project, parent.c.name == name)
        .with_for_update()
    ).scalar()
    if counter is None:
        conn.execute(parent.insert().values(project=project, name=name, next_version=2, **first))
        return 1
    conn.execute(
        parent.update()
        .where(parent.c.project == project, parent.c.name == name)
        .values(next_version=counter + 1, **(bump or {}))
    )
    return int(counter)


def version_page(
    conn: sa.Connection,
    versions: sa.Table,
    project: str,
    name: str,
    *,
    limit: int,
    order: str,
    after: int | None,
    before: int | None,
) -> tuple[list[sa.Row[Any]], bool]:
    """One page of ``name``'s versions, by number."""
    query = sa.select(versions).where(versions.c.project == project, versions.c.name == name)
    return paginate(
        conn, query, versions.c.version, limit=limit, order=order, after=after, before=before
    )
