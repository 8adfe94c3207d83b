"""Toolboxes and their immutable, numbered versions; one of them is the default.

Versions are content-addressed like agent versions: creating a version with the content of an
existing one returns that version. The first version becomes the default; later versions do
not move it, :meth:`ToolboxStore.set_default_version` does (promotion).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cupola.domain import Page
from cupola.domain.toolboxes import Toolbox, ToolboxVersion
from cupola.exceptions import NotFound, UserError
from cupola.ids import now
from cupola.store.base import SqlBase, page_of, paginate
from cupola.store.tables import toolbox_versions, toolboxes
from cupola.store.versions import content_hash, reserve_number, same_content, version_page


def _version(row: sa.Row[Any]) -> ToolboxVersion:
    return ToolboxVersion(
        name=row.name,
        version=row.version,
        tools=row.tools,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        content_hash=row.content_hash,
    )


def _not_found(name: str) -> NotFound:
    return NotFound(f"toolbox {name!r} not found", param="name", code="not_found")


def _toolbox_row(conn: sa.Connection, project: str, name: str, *, lock: bool = False) -> Any:
    query = sa.select(toolboxes).where(toolboxes.c.project == project, toolboxes.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise _not_found(name)
    return row


def _find_version(conn: sa.Connection, project: str, name: str, version: int) -> ToolboxVersion:
    row = conn.execute(
        sa.select(toolbox_versions).where(
            toolbox_versions.c.project == project,
            toolbox_versions.c.name == name,
            toolbox_versions.c.version == version,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"version {version} of toolbox {name!r} not found", param="version", code="not_found"
        )
    return _version(row)


def _latest(conn: sa.Connection, project: str, name: str) -> ToolboxVersion:
    row = conn.execute(
        sa.select(toolbox_versions)
        .where(toolbox_versions.c.project == project, toolbox_versions.c.name == name)
        .order_by(toolbox_versions.c.version.desc())
        .limit(1)
    ).first()
    if row is None:
        raise _not_found(name)
    return _version(row)


def _toolbox(conn: sa.Connection, project: str, name: str) -> Toolbox:
    row = _toolbox_row(conn, project, name)
    latest = _latest(conn, project, name)
    default = (
        latest
        if latest.version == row.default_version
        else _find_version(conn, project, name, row.default_version)
    )
    return Toolbox(
        name=name,
        default=default,
        latest=latest,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _get_version(
    conn: sa.Connection, project: str, name: str, version: int | None
) -> ToolboxVersion:
    if version is None:
        version = _toolbox_row(conn, project, name).default_version
    else:
        _toolbox_row(conn, project, name)
    return _find_version(conn, project, name, version)


def _touch(conn: sa.Connection, project: str, name: str, **values: Any) -> None:
    conn.execute(
        toolboxes.update()
        .where(toolboxes.c.project == project, toolboxes.c.name == name)
        .values(updated_at=now(), **values)
    )


class ToolboxStore(SqlBase):
    async def create_toolbox_version(
        self,
        project: str,
        name: str,
        tools: list[dict[str, Any]],
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> tuple[ToolboxVersion, bool]:
        """Store a new version (creating the toolbox, whose default it then becomes), or
        return the existing one with identical content. The flag is True when created.
        ``tools`` must already be checked (``check_toolbox_tools``)."""
        meta = metadata or {}
        digest = content_hash({"tools": tools}, description, meta)

        def run(conn: sa.Connection) -> tuple[ToolboxVersion, bool]:
            same = same_content(conn, toolbox_versions, project, name, digest)
            if same is not None:
                return _version(same), False
            created = now()
            number = reserve_number(
                conn,
                toolboxes,
                project,
                name,
                first={"default_version": 1, "created_at": created, "updated_at": created},
                bump={"updated_at": created},
            )
            version = ToolboxVersion(
                name=name,
                version=number,
                tools=tools,
                description=description,
                metadata=meta,
                created_at=created,
                content_hash=digest,
            )
            conn.execute(
                toolbox_versions.insert().values(
                    project=project,
                    name=name,
                    version=number,
                    content_hash=digest,
                    description=description,
                    metadata=meta,
                    tools=tools,
                    created_at=created,
                )
            )
            return version, True

        try:
            return await self._write(run)
        except sa.exc.IntegrityError:
            # A concurrent create of the same content or the same new toolbox won the race.
            return await self._write(run)

    async def get_toolbox(self, project: str, name: str) -> Toolbox:
        """The toolbox with its default and latest versions; raises NotFound."""
        return await self._read(_toolbox, project, name)

    async def get_toolbox_version(
        self, project: str, name: str, version: int | None = None
    ) -> ToolboxVersion:
        """The given version, or the default version when ``version`` is None (what the
        toolbox's stable endpoint serves); raises NotFound."""
        return await self._read(_get_version, project, name, version)

    async def list_toolboxes(
        self,
        project: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Toolbox]:
        """Toolboxes, paged by name."""

        def run(conn: sa.Connection) -> Page[Toolbox]:
            names = sa.select(toolboxes.c.name).where(toolboxes.c.project == project)
            rows, more = paginate(
                conn, names, toolboxes.c.name, limit=limit, order=order, after=after, before=before
            )
            return page_of([_toolbox(conn, project, r.name) for r in rows], more)

        return await self._read(run)

    async def list_toolbox_versions(
        self,
        project: str,
        name: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: int | None = None,
        before: int | None = None,
    ) -> Page[ToolboxVersion]:
        """A toolbox's versions, paged by number; raises NotFound for an unknown toolbox."""

        def run(conn: sa.Connection) -> Page[ToolboxVersion]:
            _toolbox_row(conn, project, name)
            rows, more = version_page(
                conn,
                toolbox_versions,
                project,
                name,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
            return page_of([_version(r) for r in rows], more)

        return await self._read(run)

    async def set_default_version(self, project: str, name: str, version: int) -> Toolbox:
        """Make ``version`` the default (promote or roll back); raises NotFound."""

        def run(conn: sa.Connection) -> Toolbox:
            row = _toolbox_row(conn, project, name, lock=True)
            _find_version(conn, project, name, version)
            if row.default_version != version:
                _touch(conn, project, name, default_version=version)
            return _toolbox(conn, project, name)

        return await self._write(run)

    async def delete_toolbox_version(self, project: str, name: str, version: int) -> None:
        """Delete one version. The default version cannot be deleted while others exist
        (UserError, code ``default_version``); deleting the only version deletes the toolbox."""

        def run(conn: sa.Connection) -> None:
            row = _toolbox_row(conn, project, name, lock=True)
            _find_version(conn, project, name, version)
            left = conn.execute(
                sa.select(sa.func.count()).where(
                    toolbox_versions.c.project == project, toolbox_versions.c.name == name
                )
            ).scalar()
            if version == row.default_version and (left or 0) > 1:
                raise UserError(
                    f"version {version} is the default version of toolbox {name!r}; make "
                    "another version the default first, or delete the whole toolbox",
                    param="version",
                    code="default_version",
                )
            conn.execute(
                toolbox_versions.delete().where(
                    toolbox_versions.c.project == project,
                    toolbox_versions.c.name == name,
                    toolbox_versions.c.version == version,
                )
            )
            if (left or 0) <= 1:
                conn.execute(
                    toolboxes.delete().where(
                        toolboxes.c.project == project, toolboxes.c.name == name
                    )
                )
            else:
                _touch(conn, project, name)

        await self._write(run)

    async def delete_toolbox(self, project: str, name: str) -> None:
        """Delete a toolbox and every version of it; raises NotFound."""

        def run(conn: sa.Connection) -> None:
            _toolbox_row(conn, project, name, lock=True)
            conn.execute(
                toolbox_versions.delete().where(
                    toolbox_versions.c.project == project, toolbox_versions.c.name == name
                )
            )
            conn.execute(
                toolboxes.delete().where(toolboxes.c.project == project, toolboxes.c.name == name)
            )

        await self._write(run)
