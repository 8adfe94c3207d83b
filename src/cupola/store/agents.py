"""Agents: versioned resources of kind ``agent`` whose content is the definition."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cupola.domain import AgentVersion, Page
from cupola.domain.versions import Selector
from cupola.store import versions as v
from cupola.store.base import SqlBase, page_of

AGENT = v.Kind("agent", "agent", "agent_name")


def _agent(row: v.VersionRow) -> AgentVersion:
    return AgentVersion(
        name=row.name,
        version=row.version,
        definition=row.content,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        content_hash=row.content_hash,
    )


class AgentStore(SqlBase):
    async def create_agent_version(
        self,
        project: str,
        name: str,
        definition: dict[str, Any],
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> tuple[AgentVersion, bool]:
        """Store a new version, or return the existing one with identical content.
        The flag is True when a version was created."""

        def run(conn: sa.Connection) -> tuple[AgentVersion, bool]:
            row, created = v.create(
                conn, project, AGENT, name, definition, description, metadata or {}
            )
            return _agent(row), created

        try:
            return await self._write(run)
        except sa.exc.IntegrityError:
            # A concurrent apply of the same content or the same new agent won the race.
            return await self._write(run)

    async def get_agent_version(
        self, project: str, name: str, version: Selector = None
    ) -> AgentVersion:
        """The version a selector means: a number, a label, or None for the latest."""

        def run(conn: sa.Connection) -> AgentVersion:
            return _agent(v.find(conn, project, AGENT, name, version))

        return await self._read(run)

    async def list_agents(
        self,
        project: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page[AgentVersion]:
        """Agents (by name), each as its latest version."""

        def run(conn: sa.Connection) -> Page[AgentVersion]:
            rows, more = v.names_page(
                conn, project, AGENT, limit=limit, order=order, after=after, before=before
            )
            return page_of([_agent(v.find(conn, project, AGENT, r.name, None)) for r in rows], more)

        return await self._read(run)

    async def list_agent_versions(
        self,
        project: str,
        name: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: int | None = None,
        before: int | None = None,
    ) -> Page[AgentVersion]:
        def run(conn: sa.Connection) -> Page[AgentVersion]:
            page = v.versions_page(
                conn, project, AGENT, name, limit=limit, order=order, after=after, before=before
            )
            return page_of([_agent(r) for r in page.data], page.has_more)

        return await self._read(run)

    async def delete_agent_version(self, project: str, name: str, version: int) -> None:
        """Delete one version; deleting the last one deletes the agent. A version a label
        points at is kept while others exist (UserError, code ``labelled_version``)."""
        await self._write(v.delete_version, project, AGENT, name, version)

    async def delete_agent(self, project: str, name: str) -> None:
        """Delete an agent, every version and label of it (label removals are recorded)."""
        await self._write(v.delete_resource, project, AGENT, name)
