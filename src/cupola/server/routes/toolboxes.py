"""Foundry's toolboxes REST, as azure-ai-projects calls it (``?api-version=v1``).

Creates, reads and updates answer 200 with a ``ToolboxObject`` or ``ToolboxVersionObject``;
deletes answer 204 with no body (the SDK checks both exactly). The MCP endpoint that serves a
toolbox (``/toolboxes/{name}/mcp``) is routed elsewhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.domain.toolboxes import version_number
from cupola.domain.versions import parse_selector
from cupola.runtime.request import Metadata
from cupola.server.http import JSONResponse, list_envelope, parse_body, query_int, query_order
from cupola.server.objects import toolbox_object, toolbox_version_object
from cupola.server.openapi import PAGE_BOTH_WAYS, VERSION_NUMBER, VERSION_SELECTOR, api
from cupola.server.schemas.objects import Toolbox, ToolboxPage, ToolboxVersion, ToolboxVersionPage
from cupola.server.services import Services


class CreateToolboxVersion(BaseModel):
    model_config = ConfigDict(extra="allow")
    tools: Any = None
    description: str | None = Field(default=None, max_length=512)
    metadata: Metadata = None
    skills: list[Any] | None = None
    policies: dict[str, Any] | None = None


class UpdateToolbox(BaseModel):
    model_config = ConfigDict(extra="allow")
    default_version: str | int | None = None


def _cursor(request: Request, key: str) -> int | None:
    """A version cursor (``after``/``before``): the version id (``name:3``) or number."""
    raw = request.query_params.get(key)
    return version_number(raw.rsplit(":", 1)[-1], key) if raw else None


def routes(s: Services) -> list[Route]:
    """The toolbox routes (``s.toolboxes`` holds the rules)."""

    @api(body=CreateToolboxVersion, response=ToolboxVersion)
    async def create_version(request: Request) -> Response:
        """Create a toolbox version (creating the toolbox)."""
        project = s.project(request)
        body = await parse_body(request, CreateToolboxVersion)
        version, _created = await s.toolboxes.create_version(
            project,
            request.path_params["name"],
            body.tools,
            description=body.description,
            metadata=body.metadata,
            may_start_processes=s.may_start_processes(request),
            unsupported={"skills": body.skills, "policies": body.policies},
        )
        return JSONResponse(toolbox_version_object(version, project))

    @api(response=Toolbox)
    async def get_toolbox(request: Request) -> Response:
        """Get a toolbox with its default and latest versions."""
        project = s.project(request)
        toolbox = await s.store.get_toolbox(project, request.path_params["name"])
        return JSONResponse(toolbox_object(toolbox, project))

    @api(body=UpdateToolbox, response=Toolbox)
    async def update_toolbox(request: Request) -> Response:
        """Set a toolbox's default version."""
        project = s.project(request)
        body = await parse_body(request, UpdateToolbox)
        toolbox = await s.toolboxes.set_default(
            project, request.path_params["name"], body.default_version
        )
        return JSONResponse(toolbox_object(toolbox, project))

    @api(response=ToolboxPage, query=PAGE_BOTH_WAYS)
    async def list_toolboxes(request: Request) -> Response:
        """List toolboxes."""
        project = s.project(request)
        page = await s.store.list_toolboxes(
            project,
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=request.query_params.get("after") or None,
            before=request.query_params.get("before") or None,
        )
        data = [toolbox_object(t, project) for t in page.data]
        return JSONResponse(list_envelope(data, page.has_more, null_last_when_done=True))

    @api(response=ToolboxVersionPage, query=PAGE_BOTH_WAYS)
    async def list_versions(request: Request) -> Response:
        """List a toolbox's versions."""
        project = s.project(request)
        page = await s.store.list_toolbox_versions(
            project,
            request.path_params["name"],
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=_cursor(request, "after"),
            before=_cursor(request, "before"),
        )
        data = [toolbox_version_object(v, project) for v in page.data]
        return JSONResponse(list_envelope(data, page.has_more, null_last_when_done=True))

    @api(response=ToolboxVersion, path={"version": VERSION_SELECTOR})
    async def get_version(request: Request) -> Response:
        """Get one version of a toolbox."""
        project = s.project(request)
        version = await s.store.get_toolbox_version(
            project, request.path_params["name"], parse_selector(request.path_params["version"])
        )
        return JSONResponse(toolbox_version_object(version, project))

    @api(status=204, path={"version": VERSION_NUMBER})
    async def delete_version(request: Request) -> Response:
        """Delete one version of a toolbox (never the default while others exist)."""
        await s.toolboxes.delete_version(
            s.project(request), request.path_params["name"], request.path_params["version"]
        )
        return Response(status_code=204)

    @api(status=204)
    async def delete_toolbox(request: Request) -> Response:
        """Delete a toolbox and every version of it."""
        await s.store.delete_toolbox(s.project(request), request.path_params["name"])
        return Response(status_code=204)

    one = "/toolboxes/{name}"
    return [
        Route("/toolboxes", list_toolboxes, methods=["GET"]),
        Route(one, get_toolbox, methods=["GET"]),
        Route(one, update_toolbox, methods=["PATCH"]),
        Route(one, delete_toolbox, methods=["DELETE"]),
        Route(one + "/versions", create_version, methods=["POST"]),
        Route(one + "/versions", list_versions, methods=["GET"]),
        Route(one + "/versions/{version}", get_version, methods=["GET"]),
        Route(one + "/versions/{version}", delete_version, methods=["DELETE"]),
    ]
