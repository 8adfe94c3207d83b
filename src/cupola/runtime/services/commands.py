"""The rule for tools that start a process on the server (a stdio MCP server's
``command``): only a definition an admin writes may hold one. Who the caller is (an API key's
role, an admin applying files) is the caller's to say; the rule is here."""

from __future__ import annotations

from typing import Any

from cupola.exceptions import PermissionDenied
from cupola.tools.mcp.config import local_commands


def refuse_commands(tools: Any, where: str) -> None:
    """Refuse (403, ``insufficient_role``) the first entry of ``tools`` that starts a
    process; ``where`` is the wire path of the list (``definition.tools``, ``tools``)."""
    if not isinstance(tools, list):
        return
    for i in local_commands(tools):
        raise PermissionDenied(
            f"{where}[{i}].command starts a process on the server: only an API key with the "
            "admin role may define one",
            param=f"{where}[{i}].command",
            code="insufficient_role",
        )
