"""Agent versions: every rule for creating one, whoever asks (a route, ``cupola serve
--apply``)."""

from __future__ import annotations

from typing import Any

from cupola.domain.agents import check_agent_name
from cupola.domain.records import AgentVersion
from cupola.domain.versions import Selector, version_number
from cupola.exceptions import NotFound, UserError
from cupola.models.registry import ModelRegistry
from cupola.runtime.agents import check_definition
from cupola.runtime.services.commands import refuse_commands
from cupola.store import SqlStore
from cupola.tools.registry import ToolEnv


class AgentService:
    """Creates, reads and deletes agent versions. Built once per app (``build_services``)."""

    def __init__(self, store: SqlStore, models: ModelRegistry, tools: ToolEnv) -> None:
        self.store = store
        self.models = models
        self.tools = tools

    async def create_version(
        self,
        project: str,
        name: str,
        definition: Any,
        *,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        may_start_processes: bool,
    ) -> tuple[AgentVersion, bool]:
        """Check ``definition`` and store it as a new version of agent ``name`` (``created``
        is False when identical content returned the existing version).

        Refuses, with the ``param`` the wire names: a bad name or definition (400), a tool
        that starts a process unless ``may_start_processes`` (403: the caller decides who may,
        an admin's key or an admin's files), a deployment that is not configured and a
        toolbox or vector store that does not exist (404). Nothing is stored when it refuses.
        """
        name = check_agent_name(name)
        if description is not None and len(description) > 512:
            raise UserError("description holds at most 512 characters", param="description")
        try:
            checked = check_definition(definition)
        except UserError as exc:  # the shared checks name a request's field: name the agent's
            if exc.param and not exc.param.startswith("definition"):
                exc.param = f"definition.{exc.param}"
            raise
        if not may_start_processes:
            refuse_commands(checked.get("tools"), "definition.tools")
        try:
            self.models.config(checked["model"])
        except NotFound as exc:
            raise NotFound(exc.message, param="definition.model", code=exc.code) from None
        for i, tool in enumerate(checked.get("tools") or []):
            try:
                await self.tools.check([tool], project)
            except NotFound as exc:
                at = f"definition.tools[{i}]"
                field = (exc.param or "").rsplit(".", 1)[-1]
                param = f"{at}.{field}" if field in ("name", "version", "server_label") else at
                raise NotFound(exc.message, param=param, code=exc.code) from None
        return await self.store.create_agent_version(
            project, name, checked, description, metadata or {}
        )

    async def get_version(self, project: str, name: str, selector: Selector = None) -> AgentVersion:
        """One version of agent ``name``: a number, a label, or None for the latest (404
        when the agent, the version or the label does not exist)."""
        return await self.store.get_agent_version(project, name, selector)

    async def delete_version(self, project: str, name: str, version: str | int) -> None:
        """Delete one version (never one a label points at while others exist: 409)."""
        await self.store.delete_agent_version(
            project, name, version_number(version, "agent_version")
        )

    async def delete_agent(self, project: str, name: str) -> None:
        """Delete agent ``name`` and every version of it."""
        await self.store.delete_agent(project, name)
