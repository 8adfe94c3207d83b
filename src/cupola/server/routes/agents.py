"""Foundry's agents REST, as azure-ai-projects calls it (``?api-version=v1``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.domain.versions import parse_selector, version_number
from cupola.runtime.request import Metadata
from cupola.server.http import JSONResponse, list_envelope, parse_body, query_int, query_order
from cupola.server.objects import agent_object, agent_version_object
from cupola.server.openapi import PAGE_BOTH_WAYS, VERSION_NUMBER, VERSION_SELECTOR, Query, api
from cupola.server.schemas.objects import (
    Agent,
    AgentDeleted,
    AgentPage,
    AgentVersion,
    AgentVersionDeleted,
    AgentVersionPage,
)
from cupola.server.services import Services

ONE_VERSION = {"agent_version": VERSION_NUMBER}
KIND = Query("kind", {"type": "string"}, "Only agents of this kind (cupola serves prompt).")


class CreateAgentVersion(BaseModel):
    model_config = ConfigDict(extra="allow")
    definition: dict[str, Any]
    description: str | None = Field(default=None, max_length=512)
    metadata: Metadata = None


def _version_number(raw: str) -> int:
    return version_number(raw, "agent_version")


def _cursor_version(raw: str | None) -> int | None:
    """A version cursor: the version id (``name:3``) or number."""
    if not raw:
        return None
    return _version_number(raw.rsplit(":", 1)[-1])


def routes(s: Services) -> list[Route]:
    @api(
        body=CreateAgentVersion,
        response=AgentVersion,
        summary="Create an agent version (creating the agent).",
    )
    async def create_version(request: Request) -> Response:
        project = s.project(request)
        body = await parse_body(request, CreateAgentVersion)
        version, _created = await s.agents.create_version(
            project,
            request.path_params["agent_name"],
            body.definition,
            description=body.description,
            metadata=body.metadata,
            may_start_processes=s.may_start_processes(request),
        )
        return JSONResponse(agent_version_object(version))

    @api(response=Agent, summary="Get an agent with its latest version.")
    async def get_agent(request: Request) -> Response:
        latest = await s.agents.get_version(s.project(request), request.path_params["agent_name"])
        return JSONResponse(agent_object(latest))

    @api(response=AgentPage, query=(*PAGE_BOTH_WAYS, KIND), summary="List agents.")
    async def list_agents(request: Request) -> Response:
        project, limit, order = (
            s.project(request),
            query_int(request, "limit", 20),
            query_order(request),
        )
        kind = request.query_params.get("kind")
        if kind and kind != "prompt":  # after the checks: a bad project or limit is still a 4xx
            return JSONResponse(list_envelope([], False, null_last_when_done=True))
        page = await s.store.list_agents(
            project,
            limit=limit,
            order=order,
            after=request.query_params.get("after") or None,
            before=request.query_params.get("before") or None,
        )
        data = [agent_object(v) for v in page.data]
        return JSONResponse(list_envelope(data, page.has_more, null_last_when_done=True))

    @api(response=AgentVersionPage, query=PAGE_BOTH_WAYS, summary="List an agent's versions.")
    async def list_versions(request: Request) -> Response:
        page = await s.store.list_agent_versions(
            s.project(request),
            request.path_params["agent_name"],
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=_cursor_version(request.query_params.get("after")),
            before=_cursor_version(request.query_params.get("before")),
        )
        data = [agent_version_object(v) for v in page.data]
        return JSONResponse(list_envelope(data, page.has_more, null_last_when_done=True))

    @api(
        response=AgentVersion,
        path={"agent_version": VERSION_SELECTOR},
        summary="Get one version of an agent (by number or label).",
    )
    async def get_version(request: Request) -> Response:
        version = await s.agents.get_version(
            s.project(request),
            request.path_params["agent_name"],
            parse_selector(request.path_params["agent_version"], "agent_version"),
        )
        return JSONResponse(agent_version_object(version))

    @api(response=AgentVersionDeleted, path=ONE_VERSION, summary="Delete one version of an agent.")
    async def delete_version(request: Request) -> Response:
        name = request.path_params["agent_name"]
        raw = request.path_params["agent_version"]
        await s.agents.delete_version(s.project(request), name, raw)
        return JSONResponse(
            {"object": "agent.version.deleted", "name": name, "version": raw, "deleted": True}
        )

    @api(response=AgentDeleted, summary="Delete an agent and every version of it.")
    async def delete_agent(request: Request) -> Response:
        name = request.path_params["agent_name"]
        await s.agents.delete_agent(s.project(request), name)
        return JSONResponse({"object": "agent.deleted", "name": name, "deleted": True})

    one = "/agents/{agent_name}"
    return [
        Route("/agents", list_agents, methods=["GET"]),
        Route(one, get_agent, methods=["GET"]),
        Route(one, delete_agent, methods=["DELETE"]),
        Route(one + "/versions", create_version, methods=["POST"]),
        Route(one + "/versions", list_versions, methods=["GET"]),
        Route(one + "/versions/{agent_version}", get_version, methods=["GET"]),
        Route(one + "/versions/{agent_version}", delete_version, methods=["DELETE"]),
    ]
