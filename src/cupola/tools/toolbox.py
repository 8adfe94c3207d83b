"""A toolbox used as one tool by an agent: ``{"type": "toolbox", "name", "version"?}``.

The toolbox's default version (or the pinned ``version``) is read when the response starts,
so promoting a new default changes what every agent using the toolbox gets, with no agent
redeployed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from cupola.domain.limits import parse_version
from cupola.exceptions import UserError

if TYPE_CHECKING:
    from cupola.store import SqlStore

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$")


def normalize_toolbox_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"{where}.name must name a toolbox", param=f"{where}.name")
    version = raw.get("version")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int | str):
            raise UserError(f"{where}.version must be a version number", param=f"{where}.version")
        version = parse_version(version, f"{where}.version", f"{where}.version")
    out: dict[str, Any] = {"type": "toolbox", "name": name}
    if version is not None:
        out["version"] = str(version)
    return out


async def toolbox_entries(
    store: SqlStore, project: str, tool: dict[str, Any]
) -> list[dict[str, Any]]:
    """The tool entries of the toolbox version the reference resolves to."""
    version = int(tool["version"]) if tool.get("version") else None
    found = await store.get_toolbox_version(project, tool["name"], version)
    return list(found.tools)
