"""A toolbox used as one tool by an agent: ``{"type": "toolbox", "name", "version"?}``.

``version`` is a number (pinned), a label (``prod``, ``latest``) or absent (the toolbox's
``default`` label). The version is resolved when the response starts, so moving a label
(promoting) changes what every agent using it gets, with no agent redeployed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from cupola.domain.versions import parse_selector
from cupola.exceptions import UserError

if TYPE_CHECKING:
    from cupola.store import SqlStore

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$")


def normalize_toolbox_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"{where}.name must name a toolbox", param=f"{where}.name")
    version = raw.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int | str)):
        raise UserError(
            f"{where}.version must be a version number or a label", param=f"{where}.version"
        )
    selector = parse_selector(version, f"{where}.version")
    out: dict[str, Any] = {"type": "toolbox", "name": name}
    if selector is not None:
        out["version"] = str(selector)
    return out


async def toolbox_entries(
    store: SqlStore, project: str, tool: dict[str, Any]
) -> list[dict[str, Any]]:
    """The tool entries of the toolbox version the reference resolves to."""
    version = parse_selector(tool.get("version"))
    found = await store.get_toolbox_version(project, tool["name"], version)
    return list(found.tools)
