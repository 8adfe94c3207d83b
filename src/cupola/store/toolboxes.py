"""Toolboxes: versioned resources of kind ``toolbox`` whose content is ``{"tools": [...]}``.

Versions are content-addressed like agent versions. A toolbox always has a ``default`` label
(what its stable MCP endpoint serves): the first version gets it, later versions do not move
it, :meth:`ToolboxStore.set_default_version` (promotion; Foundry's ``default_version``) or
setting the label does.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cupola.domain import Page
from cupola.domain.toolboxes import Toolbox, ToolboxVersion
from cupola.domain.versions import DEFAULT, Selector
from cupola.store import versions as v
from cupola.store.base import SqlBase, page_of

TOOLBOX = v.Kind("toolbox", "toolbox", "name", required_labels=(DEFAULT,))


def _toolbox_version(row: v.VersionRow) -> ToolboxVersion:
    return ToolboxVersion(
        name=row.name,
        version=row.version,
        tools=list(row.content["tools"]),
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        content_hash=row.content_hash,
    )


def _toolbox(conn: sa.Connection, project: str, name: str, parent: Any = None) -> Toolbox:
    row = parent if parent is not None else v.parent(conn, project, TOOLBOX, name)
    labels = v.labels_of(conn, project, TOOLBOX, name)
    latest = _toolbox_version(v.find(conn, project, TOOLBOX, name, None))
    by_label = {label.label: label.version for label in labels}
    number = by_label.get(DEFAULT, latest.version)
    default = (
        latest
        if number == latest.version
        else _toolbox_version(v.find(conn, project, TOOLBOX, name, number))
    )
    return Toolbox(
        name=name,
        default=default,
        latest=latest,
        created_at=row.created_at,
        updated_at=row.updated_at,
        labels=by_label,
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

        def run(conn: sa.Connection) -> tuple[ToolboxVersion, bool]:
            content = {"tools": tools}
            row, created = v.create(
                conn, project, TOOLBOX, name, content, description, metadata or {}
            )
            return _toolbox_version(row), created

        try:
            return await self._write(run)
        except sa.exc.IntegrityError:
            # A concurrent create of the same content or the same new toolbox won the race.
            return await self._write(run)

    async def get_toolbox(self, project: str, name: str) -> Toolbox:
        """The toolbox with its default and latest versions and its labels; raises NotFound."""
        return await self._read(_toolbox, project, name)

    async def get_toolbox_version(
        self, project: str, name: str, version: Selector = None
    ) -> ToolboxVersion:
        """The version a selector means (a number or a label), or the default version when
        ``version`` is None (what the toolbox's stable endpoint serves); raises NotFound."""

        def run(conn: sa.Connection) -> ToolboxVersion:
            selector = DEFAULT if version is None else version
            return _toolbox_version(v.find(conn, project, TOOLBOX, name, selector))

        return await self._read(run)

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
            rows, more = v.names_page(
                conn, project, TOOLBOX, limit=limit, order=order, after=after, before=before
            )
            return page_of([_toolbox(conn, project, r.name, r) for r in rows], more)

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
            page = v.versions_page(
                conn, project, TOOLBOX, name, limit=limit, order=order, after=after, before=before
            )
            return page_of([_toolbox_version(r) for r in page.data], page.has_more)

        return await self._read(run)

    async def set_default_version(self, project: str, name: str, version: int) -> Toolbox:
        """Move the ``default`` label to ``version`` (promote or roll back); raises NotFound."""

        def run(conn: sa.Connection) -> Toolbox:
            v.set_label(conn, project, TOOLBOX, name, DEFAULT, version)
            return _toolbox(conn, project, name)

        return await self._write(run)

    async def delete_toolbox_version(self, project: str, name: str, version: int) -> None:
        """Delete one version. The default version (or one another label points at) cannot be
        deleted while others exist (UserError, code ``default_version``); deleting the only
        version deletes the toolbox."""
        await self._write(v.delete_version, project, TOOLBOX, name, version)

    async def delete_toolbox(self, project: str, name: str) -> None:
        """Delete a toolbox, every version and label of it; raises NotFound."""
        await self._write(v.delete_resource, project, TOOLBOX, name)
