"""One store for versioned resources: agents and toolboxes today; evaluators, datasets and
guardrail policies next.

A resource (``kind``, ``name``) has immutable, numbered, content-addressed versions: creating a
version with the content of an existing one returns that version, and numbers are never
reused (the parent row keeps the next one, even after deletes). Named labels point at
versions (``latest`` is implicit, the highest number); setting, moving and removing a label is
recorded in ``resource_label_moves`` for audit. A version a label points at cannot be deleted
while the resource has other versions (move or remove the label first).

The functions here run inside one transaction (a ``sa.Connection``); the per-kind stores
(:mod:`cupola.store.agents`, :mod:`cupola.store.toolboxes`) and :class:`LabelStore` call them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from cupola.domain import Page
from cupola.domain.versions import LATEST, Label, LabelMove, Selector, check_label
from cupola.exceptions import NotFound, UserError
from cupola.ids import now
from cupola.store.base import SqlBase, page_of, paginate
from cupola.store.tables import resource_label_moves, resource_labels, resource_versions, resources

moves = resource_label_moves
labels = resource_labels
versions = resource_versions


def content_hash(content: dict[str, Any], description: str | None, metadata: dict[str, str]) -> str:
    """The identity of a version's content: applying identical content again reuses it."""
    canonical = orjson.dumps(
        {"definition": content, "description": description, "metadata": metadata},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class Kind:
    """How one kind of resource is named in messages and what its labels must respect."""

    kind: str
    """The ``kind`` column: ``agent``, ``toolbox`` ..."""
    noun: str
    """The word in messages: ``agent``, ``toolbox``."""
    param: str
    """The request parameter that names the resource (for error ``param``)."""
    required_labels: tuple[str, ...] = ()
    """Labels that always exist once the resource does (a toolbox's ``default``): set on the
    first version, never removed, and their version never deleted while others exist."""

    def not_found(self, name: str) -> NotFound:
        return NotFound(f"{self.noun} {name!r} not found", param=self.param, code="not_found")


@dataclass(frozen=True, slots=True)
class VersionRow:
    """A stored version, as every kind shares it (``content`` is the kind's own shape)."""

    name: str
    version: int
    content: dict[str, Any]
    description: str | None
    metadata: dict[str, str]
    created_at: int
    content_hash: str


def _row(row: sa.Row[Any]) -> VersionRow:
    return VersionRow(
        name=row.name,
        version=row.version,
        content=row.content,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        content_hash=row.content_hash,
    )


def _mine(table: sa.Table, project: str, kind: Kind, name: str) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.project == project, table.c.kind == kind.kind, table.c.name == name)


def parent(conn: sa.Connection, project: str, kind: Kind, name: str, *, lock: bool = False) -> Any:
    """The resource's row (``next_version``, ``created_at``, ``updated_at``); raises NotFound."""
    query = sa.select(resources).where(_mine(resources, project, kind, name))
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise kind.not_found(name)
    return row


def touch(conn: sa.Connection, project: str, kind: Kind, name: str) -> None:
    conn.execute(
        resources.update().where(_mine(resources, project, kind, name)).values(updated_at=now())
    )


def create(
    conn: sa.Connection,
    project: str,
    kind: Kind,
    name: str,
    content: dict[str, Any],
    description: str | None,
    metadata: dict[str, str],
) -> tuple[VersionRow, bool]:
    """Store a new version, or return the existing one with identical content (flag False).
    The first version of a resource gets its :attr:`Kind.required_labels`."""
    digest = content_hash(content, description, metadata)
    same = conn.execute(
        sa.select(versions).where(
            _mine(versions, project, kind, name), versions.c.content_hash == digest
        )
    ).first()
    if same is not None:
        return _row(same), False
    created = now()
    counter = conn.execute(
        sa.select(resources.c.next_version)
        .where(_mine(resources, project, kind, name))
        .with_for_update()
    ).scalar()
    number = 1 if counter is None else int(counter)
    if counter is None:
        conn.execute(
            resources.insert().values(
                project=project,
                kind=kind.kind,
                name=name,
                next_version=2,
                created_at=created,
                updated_at=created,
            )
        )
    else:
        conn.execute(
            resources.update()
            .where(_mine(resources, project, kind, name))
            .values(next_version=number + 1, updated_at=created)
        )
    row = VersionRow(name, number, content, description, metadata, created, digest)
    conn.execute(
        versions.insert().values(
            project=project,
            kind=kind.kind,
            name=name,
            version=number,
            content_hash=digest,
            description=description,
            metadata=metadata,
            content=content,
            created_at=created,
        )
    )
    if counter is None:
        for label in kind.required_labels:
            _move(conn, project, kind, name, label, number, None, created)
    return row, True


def label_version(conn: sa.Connection, project: str, kind: Kind, name: str, label: str) -> int:
    """The version ``label`` points at; raises NotFound."""
    found = conn.execute(
        sa.select(labels.c.version).where(
            _mine(labels, project, kind, name), labels.c.label == label
        )
    ).scalar()
    if found is None:
        parent(conn, project, kind, name)
        raise NotFound(
            f"{kind.noun} {name!r} has no label {label!r}", param="version", code="not_found"
        )
    return int(found)


def find(
    conn: sa.Connection, project: str, kind: Kind, name: str, selector: Selector
) -> VersionRow:
    """The version a selector means: a number, a label, or None (``latest``); raises NotFound
    (for the resource when it does not exist, else for the version or label)."""
    query = sa.select(versions).where(_mine(versions, project, kind, name))
    if selector is None or selector == LATEST:
        row = conn.execute(query.order_by(versions.c.version.desc()).limit(1)).first()
        if row is None:
            raise kind.not_found(name)
        return _row(row)
    number = (
        label_version(conn, project, kind, name, selector)
        if isinstance(selector, str)
        else selector
    )
    row = conn.execute(query.where(versions.c.version == number)).first()
    if row is None:
        parent(conn, project, kind, name)
        raise NotFound(
            f"version {number} of {kind.noun} {name!r} not found",
            param="version",
            code="not_found",
        )
    return _row(row)


def names_page(
    conn: sa.Connection,
    project: str,
    kind: Kind,
    *,
    limit: int,
    order: str,
    after: str | None,
    before: str | None,
) -> tuple[list[Any], bool]:
    """One page of the kind's resource rows, by name."""
    query = sa.select(resources).where(
        resources.c.project == project, resources.c.kind == kind.kind
    )
    return paginate(
        conn, query, resources.c.name, limit=limit, order=order, after=after, before=before
    )


def versions_page(
    conn: sa.Connection,
    project: str,
    kind: Kind,
    name: str,
    *,
    limit: int,
    order: str,
    after: int | None,
    before: int | None,
) -> Page[VersionRow]:
    """One page of ``name``'s versions, by number; raises NotFound for an unknown name."""
    parent(conn, project, kind, name)
    query = sa.select(versions).where(_mine(versions, project, kind, name))
    rows, more = paginate(
        conn, query, versions.c.version, limit=limit, order=order, after=after, before=before
    )
    return page_of([_row(r) for r in rows], more)


def labels_of(conn: sa.Connection, project: str, kind: Kind, name: str) -> list[Label]:
    """The resource's labels, by name (``latest`` is not stored, so not among them)."""
    rows = conn.execute(
        sa.select(labels).where(_mine(labels, project, kind, name)).order_by(labels.c.label)
    )
    return [Label(name, r.label, r.version, r.updated_at) for r in rows]


def _move(
    conn: sa.Connection,
    project: str,
    kind: Kind,
    name: str,
    label: str,
    version: int | None,
    previous: int | None,
    at: int,
) -> None:
    where = sa.and_(_mine(labels, project, kind, name), labels.c.label == label)
    if version is None:
        conn.execute(labels.delete().where(where))
    elif previous is None:
        conn.execute(
            labels.insert().values(
                project=project,
                kind=kind.kind,
                name=name,
                label=label,
                version=version,
                updated_at=at,
            )
        )
    else:
        conn.execute(labels.update().where(where).values(version=version, updated_at=at))
    conn.execute(
        moves.insert().values(
            project=project,
            kind=kind.kind,
            name=name,
            label=label,
            version=version,
            previous=previous,
            at=at,
        )
    )


def set_label(
    conn: sa.Connection, project: str, kind: Kind, name: str, label: str, version: int
) -> Label:
    """Point ``label`` at ``version`` (set or move it); a no-op when it already does."""
    check_label(label)
    parent(conn, project, kind, name, lock=True)
    find(conn, project, kind, name, version)
    current = conn.execute(
        sa.select(labels).where(_mine(labels, project, kind, name), labels.c.label == label)
    ).first()
    if current is not None and current.version == version:
        return Label(name, label, version, current.updated_at)
    at = now()
    _move(
        conn, project, kind, name, label, version, None if current is None else current.version, at
    )
    touch(conn, project, kind, name)
    return Label(name, label, version, at)


def remove_label(conn: sa.Connection, project: str, kind: Kind, name: str, label: str) -> None:
    """Remove ``label``; raises NotFound when it is not set, UserError for a required one."""
    check_label(label)
    if label in kind.required_labels:
        raise UserError(
            f"a {kind.noun} always has a {label!r} label; move it instead of removing it",
            param="label",
            code="required_label",
        )
    parent(conn, project, kind, name, lock=True)
    previous = label_version(conn, project, kind, name, label)
    _move(conn, project, kind, name, label, None, previous, now())
    touch(conn, project, kind, name)


def history(
    conn: sa.Connection,
    project: str,
    kind: Kind,
    name: str,
    *,
    label: str | None = None,
    limit: int = 100,
    order: str = "desc",
    after: int | None = None,
    before: int | None = None,
) -> Page[LabelMove]:
    """The moves of the resource's labels (of one label when given), by sequence. Kept after
    the resource is deleted, for audit: no NotFound for a name that is gone."""
    query = sa.select(moves).where(_mine(moves, project, kind, name))
    if label is not None:
        query = query.where(moves.c.label == label)
    rows, more = paginate(
        conn, query, moves.c.seq, limit=limit, order=order, after=after, before=before
    )
    return page_of(
        [LabelMove(name, r.label, r.version, r.previous, r.at, r.seq) for r in rows], more
    )


def _drop_labels(
    conn: sa.Connection, project: str, kind: Kind, name: str, only: Iterable[Label]
) -> None:
    at = now()
    for found in only:
        _move(conn, project, kind, name, found.label, None, found.version, at)


def delete_version(conn: sa.Connection, project: str, kind: Kind, name: str, version: int) -> bool:
    """Delete one version; deleting the only version deletes the resource (and returns True).
    A version a label points at is kept while others exist (UserError, code
    ``labelled_version``; ``default_version`` for a toolbox's default)."""
    parent(conn, project, kind, name, lock=True)
    find(conn, project, kind, name, version)
    left = (
        conn.execute(
            sa.select(sa.func.count()).where(_mine(versions, project, kind, name))
        ).scalar()
        or 0
    )
    pointing = [label for label in labels_of(conn, project, kind, name) if label.version == version]
    if pointing and left > 1:
        names = ", ".join(repr(label.label) for label in pointing)
        required = [label.label for label in pointing if label.label in kind.required_labels]
        raise UserError(
            f"version {version} is the {required[0]} version of {kind.noun} {name!r}; make "
            f"another version the {required[0]} first, or delete the whole {kind.noun}"
            if required
            else f"labels {names} point at version {version} of {kind.noun} {name!r}; move or "
            "remove them first",
            param="version",
            code=f"{required[0]}_version" if required else "labelled_version",
        )
    if left <= 1:
        delete_resource(conn, project, kind, name)
        return True
    conn.execute(
        versions.delete().where(_mine(versions, project, kind, name), versions.c.version == version)
    )
    touch(conn, project, kind, name)
    return False


def delete_resource(conn: sa.Connection, project: str, kind: Kind, name: str) -> None:
    """Delete the resource, every version and label (each label's removal is recorded)."""
    parent(conn, project, kind, name, lock=True)
    _drop_labels(conn, project, kind, name, labels_of(conn, project, kind, name))
    conn.execute(versions.delete().where(_mine(versions, project, kind, name)))
    conn.execute(resources.delete().where(_mine(resources, project, kind, name)))


class LabelStore(SqlBase):
    """Labels of any versioned resource, by kind (``agent``, ``toolbox``)."""

    async def set_label(
        self, project: str, kind: Kind, name: str, label: str, version: int
    ) -> Label:
        """Point ``label`` at ``version`` (set or move it); raises NotFound, UserError."""
        return await self._write(set_label, project, kind, name, label, version)

    async def remove_label(self, project: str, kind: Kind, name: str, label: str) -> None:
        """Remove ``label``; raises NotFound when it is not set."""
        await self._write(remove_label, project, kind, name, label)

    async def list_labels(self, project: str, kind: Kind, name: str) -> list[Label]:
        """The resource's labels by name; raises NotFound for an unknown resource."""

        def run(conn: sa.Connection) -> list[Label]:
            parent(conn, project, kind, name)
            return labels_of(conn, project, kind, name)

        return await self._read(run)

    async def label_history(
        self,
        project: str,
        kind: Kind,
        name: str,
        *,
        label: str | None = None,
        limit: int = 100,
        order: str = "desc",
        after: int | None = None,
        before: int | None = None,
    ) -> Page[LabelMove]:
        """Every move of the resource's labels (or of one label), newest first by default."""
        return await self._read(
            lambda conn: history(
                conn,
                project,
                kind,
                name,
                label=label,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
        )
