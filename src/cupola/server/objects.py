"""Foundry's REST objects, as azure-ai-projects parses them, built from the store's records."""

from __future__ import annotations

from typing import Any

from cupola.domain.connections import Connection
from cupola.domain.records import AgentVersion
from cupola.domain.toolboxes import Toolbox, ToolboxVersion
from cupola.domain.versions import Label, LabelMove


def agent_version_object(v: AgentVersion) -> dict[str, Any]:
    """``AgentVersionDetails`` as azure-ai-projects parses it."""
    return {
        "object": "agent.version",
        "id": f"{v.name}:{v.version}",
        "name": v.name,
        "version": str(v.version),
        "description": v.description,
        "created_at": v.created_at,
        "metadata": v.metadata,
        "status": "active",
        "definition": v.definition,
    }


def agent_object(latest: AgentVersion) -> dict[str, Any]:
    """``AgentDetails``: the agent with its latest version."""
    return {
        "object": "agent",
        "id": latest.name,
        "name": latest.name,
        "state": "enabled",
        "configuration_state": "enabled",
        "versions": {"latest": agent_version_object(latest)},
    }


def mcp_endpoint(project: str, name: str, version: int | None = None) -> str:
    """The toolbox's MCP endpoint (a path under the server root). Without a version it serves
    whichever version is the default at the time; ``?version=N`` pins one."""
    path = f"/api/projects/{project}/toolboxes/{name}/mcp"
    return path if version is None else f"{path}?version={version}"


def toolbox_version_object(v: ToolboxVersion, project: str) -> dict[str, Any]:
    """``ToolboxVersionObject`` as azure-ai-projects parses it (plus ``mcp_endpoint``, pinned
    to this version)."""
    return {
        "object": "toolbox.version",
        "id": f"{v.name}:{v.version}",
        "name": v.name,
        "version": str(v.version),
        "description": v.description,
        "created_at": v.created_at,
        "metadata": v.metadata,
        "tools": v.tools,
        "mcp_endpoint": mcp_endpoint(project, v.name, v.version),
    }


def toolbox_object(tb: Toolbox, project: str) -> dict[str, Any]:
    """``ToolboxObject``: the toolbox, its default version and latest version (plus
    ``mcp_endpoint``, the stable endpoint that serves the default version, and ``labels``,
    each label's version number)."""
    return {
        "object": "toolbox",
        "id": tb.name,
        "name": tb.name,
        "created_at": tb.created_at,
        "updated_at": tb.updated_at,
        "default_version": str(tb.default_version),
        "labels": {label: str(number) for label, number in tb.labels.items()},
        "versions": {"latest": toolbox_version_object(tb.latest, project)},
        "mcp_endpoint": mcp_endpoint(project, tb.name),
    }


def connection_object(c: Connection) -> dict[str, Any]:
    """``Connection`` as azure-ai-projects parses it: credentials carry only their type."""
    return {
        "name": c.name,
        "id": c.id,
        "type": c.type,
        "target": c.target,
        "isDefault": c.is_default,
        "credentials": {"type": c.credential_type},
        "metadata": dict(c.metadata),
    }


def label_object(kind: str, label: Label) -> dict[str, Any]:
    """A label of an agent or toolbox (a cupola extension: Foundry has no labels)."""
    return {
        "object": f"{kind}.label",
        "id": f"{label.name}@{label.label}",
        "name": label.name,
        "label": label.label,
        "version": str(label.version),
        "updated_at": label.updated_at,
    }


def label_move_object(kind: str, move: LabelMove) -> dict[str, Any]:
    """One recorded move of a label: ``version`` None when it was removed,
    ``previous_version`` None when it was first set."""
    return {
        "object": f"{kind}.label_move",
        "id": str(move.seq),
        "name": move.name,
        "label": move.label,
        "version": None if move.version is None else str(move.version),
        "previous_version": None if move.previous is None else str(move.previous),
        "created_at": move.at,
    }
