"""``GET /models``: the deployments and agents a caller may name as ``model``, in the OpenAI
list shape that OpenAI-style clients (OpenClaw, LangChain, IDE plugins) discover.

API keys are project-wide today, so a key may use everything in its project: every
deployment cupola.yaml declares and every agent of the project.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.domain.records import AgentVersion
from cupola.domain.versions import parse_selector
from cupola.exceptions import NotFound, UserError
from cupola.ids import now
from cupola.server.http import JSONResponse
from cupola.server.openapi import api
from cupola.server.routes.deployments import deployment_object
from cupola.server.schemas.objects import Model, ModelList
from cupola.server.services import Services
from cupola.settings import DeploymentConfig

AGENT_OWNER = "cupola-agent"
_PAGE = 100


def deployment_model(d: DeploymentConfig, created: int) -> dict[str, Any]:
    owner = deployment_object(d)["modelPublisher"]
    return {"id": d.name, "object": "model", "created": created, "owned_by": owner}


def agent_model(agent: AgentVersion) -> dict[str, Any]:
    return {
        "id": agent.name,
        "object": "model",
        "created": agent.created_at,
        "owned_by": AGENT_OWNER,
    }


def routes(s: Services) -> list[Route]:
    loaded = now()  # deployments come from cupola.yaml: they date from when it was loaded

    @api(response=ModelList)
    async def list_models(request: Request) -> Response:
        """List the deployments and agents this caller may use as ``model``."""
        project = s.project(request)
        data = [deployment_model(d, loaded) for d in s.models.deployments]
        after: str | None = None
        while True:
            page = await s.store.list_agents(project, limit=_PAGE, order="asc", after=after)
            data += [agent_model(a) for a in page.data]
            if not page.has_more or not page.data:
                break
            after = page.data[-1].name
        return JSONResponse({"object": "list", "data": data})

    @api(response=Model)
    async def retrieve_model(request: Request) -> Response:
        """One deployment or agent by name (an agent also as ``name:version``)."""
        project = s.project(request)
        model_id: str = request.path_params["model_id"]
        for d in s.models.deployments:
            if d.name == model_id:
                return JSONResponse(deployment_model(d, loaded))
        name, _, version = model_id.partition(":")
        try:
            agent = await s.store.get_agent_version(project, name, parse_selector(version))
        except (NotFound, UserError, ValueError):
            raise NotFound(
                f"model {model_id!r} not found: no deployment or agent of that name",
                param="model",
                code="model_not_found",
            ) from None
        found = agent_model(agent)
        found["id"] = model_id
        return JSONResponse(found)

    return [
        Route("/models", list_models, methods=["GET"]),
        Route("/models/{model_id}", retrieve_model, methods=["GET"]),
    ]
