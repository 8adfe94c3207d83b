"""Toolbox versions: every rule for creating one and for choosing its default, whoever asks
(a route, ``cupola serve --apply``)."""

from __future__ import annotations

from typing import Any

from cupola.domain.toolboxes import (
    EntryCheck,
    Toolbox,
    ToolboxVersion,
    check_toolbox_name,
    check_toolbox_tools,
    version_number,
)
from cupola.exceptions import UserError
from cupola.runtime.services.commands import refuse_commands
from cupola.store import SqlStore
from cupola.tools.registry import normalize_server_tool


class ToolboxService:
    """Creates toolbox versions and moves a toolbox's default. ``entry_check`` checks and
    normalizes one tool entry (default: the tool registry's, the same a response uses)."""

    def __init__(self, store: SqlStore, entry_check: EntryCheck = normalize_server_tool) -> None:
        self.store = store
        self.entry_check = entry_check

    async def create_version(
        self,
        project: str,
        name: str,
        tools: Any,
        *,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        may_start_processes: bool,
        unsupported: dict[str, Any] | None = None,
    ) -> tuple[ToolboxVersion, bool]:
        """Check ``tools`` and store them as a new version of toolbox ``name`` (the first
        version becomes the default; ``created`` is False when identical content returned
        the existing version).

        Refuses, with the ``param`` the wire names: a bad name, a missing or bad tool list
        (400), a field this server does not serve (``unsupported``: Foundry's ``skills`` and
        ``policies``, 400), a tool that starts a process unless ``may_start_processes``
        (403). Nothing is stored when it refuses."""
        name = check_toolbox_name(name)
        for field, value in (unsupported or {}).items():
            if value:
                raise UserError(
                    f"toolbox {field} are not supported by this server",
                    param=field,
                    code="unsupported_parameter",
                )
        if tools is None:
            raise UserError("tools is required", param="tools", code="missing_required_parameter")
        if description is not None and len(description) > 512:
            raise UserError("description holds at most 512 characters", param="description")
        checked = check_toolbox_tools(tools, self.entry_check)
        if not may_start_processes:
            refuse_commands(checked, "tools")
        return await self.store.create_toolbox_version(
            project, name, checked, description, metadata or {}
        )

    async def set_default(self, project: str, name: str, version: str | int | None) -> Toolbox:
        """Point toolbox ``name``'s default at ``version`` (400 when missing or not a
        number, 404 when the toolbox or version does not exist)."""
        if version is None:
            raise UserError(
                "default_version is required",
                param="default_version",
                code="missing_required_parameter",
            )
        number = version_number(version, "default_version")
        return await self.store.set_default_version(project, name, number)

    async def delete_version(self, project: str, name: str, version: str | int) -> None:
        """Delete one version (never the default while others exist: 409)."""
        await self.store.delete_toolbox_version(project, name, version_number(version))
