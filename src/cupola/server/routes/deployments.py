"""``/deployments``: the model deployments cupola.yaml declares, as Foundry lists them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.server.http import JSONResponse
from cupola.server.openapi import Query, api
from cupola.server.schemas.objects import Deployment, DeploymentList
from cupola.server.services import Services
from cupola.settings import DeploymentConfig

_PUBLISHERS = {"embedded": "HuggingFaceTB", "scripted": "cupola", "openai": "OpenAI"}

FILTERS = (
    Query("modelPublisher", {"type": "string"}, "Only this publisher's deployments."),
    Query("modelName", {"type": "string"}, "Only deployments of this model."),
)


def deployment_object(d: DeploymentConfig) -> dict[str, Any]:
    model_name = d.model or ("SmolLM2-135M-Instruct" if d.provider == "embedded" else d.name)
    return {
        "type": "ModelDeployment",
        "name": d.name,
        "modelName": model_name,
        "modelVersion": "1",
        "modelPublisher": d.publisher or _PUBLISHERS.get(d.provider, d.provider),
        "capabilities": {"chat_completion": "true", "responses": "true", "tools": "true"},
        "sku": {
            "name": d.provider,
            "capacity": 1,
            "family": d.provider,
            "size": "",
            "tier": "Standard",
        },
        "connectionName": None,
    }


def routes(s: Services) -> list[Route]:
    @api(response=DeploymentList, query=FILTERS, summary="List the model deployments.")
    async def list_deployments(request: Request) -> Response:
        s.project(request)
        publisher = request.query_params.get("modelPublisher")
        name = request.query_params.get("modelName")
        found = [deployment_object(d) for d in s.models.deployments]
        found = [
            d
            for d in found
            if (not publisher or d["modelPublisher"] == publisher)
            and (not name or d["modelName"] == name)
        ]
        return JSONResponse({"value": found})

    @api(response=Deployment, summary="Get a model deployment.")
    async def get_deployment(request: Request) -> Response:
        s.project(request)
        return JSONResponse(deployment_object(s.models.config(request.path_params["name"])))

    return [
        Route("/deployments", list_deployments, methods=["GET"]),
        Route("/deployments/{name}", get_deployment, methods=["GET"]),
    ]
