"""Agents and their immutable, numbered versions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cupola.domain import AgentVersion, Page
from cupola.exceptions import NotFound
from cupola.ids import now
from cupola.store.base import SqlBase, page_of, paginate
from cupola.store.tables import agent_versions, agents
from cupola.store.versions import content_hash, reserve_number, same_content, version_page


def _version(row: sa.Row[Any]) -> AgentVersion:
    return AgentVersion(
        name=row.name,
        version=row.version,
        definition=row.definition,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        content_hash=row.content_hash,
    )


def _find(conn: sa.Connection, project: str, name: str, version: int | None) -> AgentVersion:
    query = sa.select(agent_versions).where(
        agent_versions.c.project == project, agent_versions.c.name == name
    )
    if version is None:
        query = query.order_by(agent_versions.c.version.desc()).limit(1)
    else:
        query = query.where(agent_versions.c.version == version)
    row = conn.execute(query).first()
    if row is None:
        if version is None:
            raise NotFound(f"agent {name!r} not found", param="agent_name", code="not_found")
        raise NotFound(
            f"version {version} of agent {name!r} not found", param="version", code="not_found"
        )
    return _version(row)


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
        meta = metadata or {}
        digest = content_hash(definition, description, meta)

        def run(conn: sa.Connection) -> tuple[AgentVersion, bool]:
            same = same_content(conn, agent_versions, project, name, digest)
            if same is not None:
                return _version(same), False
            created = now()
            number = reserve_number(conn, agents, project, name, first={"created_at": created})
            values = dict(
                project=project,
                name=name,
                version=number,
                content_hash=digest,
                description=description,
                metadata=meta,
                definition=definition,
                created_at=created,
            )
            conn.execute(agent_versions.insert().values(**values))
            del values["project"]
            return AgentVersion(**values), True  # type: ignore[arg-type]

        try:
            return await self._write(run)
        except sa.exc.IntegrityError:
            # A concurrent apply of the same content or the same new agent won the race.
            return await self._write(run)

    async def get_agent_version(
        self, project: str, name: str, version: int | None = None
    ) -> AgentVersion:
        """The given version, or the latest when ``version`` is None."""
        return await self._read(_find, project, name, version)

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
            names = sa.select(agents.c.name).where(agents.c.project == project)
            rows, more = paginate(
                conn, names, agents.c.name, limit=limit, order=order, after=after, before=before
            )
            return page_of([_find(conn, project, r.name, None) for r in rows], more)

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
            _find(conn, project, name, None)
            rows, more = version_page(
                conn,
                agent_versions,
                project,
                name,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
            return page_of([_version(r) for r in rows], more)

        return await self._read(run)

    async def delete_agent_version(self, project: str, name: str, version: int) -> None:
        """Delete one version; deleting the last one deletes the agent."""

        def run(conn: sa.Connection) -> None:
            _find(conn, project, name, version)
            conn.execute(
                agent_versions.delete().where(
                    agent_versions.c.project == project,
                    agent_versions.c.name == name,
                    agent_versions.c.version == version,
                )
            )
            left = conn.execute(
                sa.select(sa.func.count()).where(
                    agent_versions.c.project == project, agent_versions.c.name == name
                )
            ).scalar()
            if not left:
                conn.execute(
                    agents.delete().where(agents.c.project == project, agents.c.name == name)
                )

        await self._write(run)

    async def delete_agent(self, project: str, name: str) -> None:
        """Delete an agent and every version of it."""

        def run(conn: sa.Connection) -> None:
            _find(conn, project, name, None)
            conn.execute(
                agent_versions.delete().where(
                    agent_versions.c.project == project, agent_versions.c.name == name
                )
            )
            conn.execute(agents.delete().where(agents.c.project == project, agents.c.name == name))

        await self._write(run)
