"""``/healthz`` and ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from cupola import __version__
from cupola.runtime.request import CreateResponse
from cupola.server.http import JSONResponse
from cupola.server.schemas.anthropic import CountTokensRequest, MessagesRequest
from cupola.server.schemas.chat import ChatCompletionRequest

_BODIES: dict[tuple[str, str], type[Any]] = {
    ("POST", "/responses"): CreateResponse,
    ("POST", "/chat/completions"): ChatCompletionRequest,
    ("POST", "/messages"): MessagesRequest,
    ("POST", "/messages/count_tokens"): CountTokensRequest,
}


def _walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _walk(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix + route.path, route))
    return found


def openapi_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """An OpenAPI 3.1 description generated from the routes the app really serves."""
    paths: dict[str, dict[str, Any]] = {}
    for path, route in _walk(routes):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            doc = (route.endpoint.__doc__ or route.name or "").strip().splitlines()
            operation: dict[str, Any] = {
                "operationId": f"{method.lower()}_{route.name}_{len(paths)}",
                "summary": doc[0] if doc else route.name,
                "responses": {
                    "200": {"description": "OK"},
                    "4XX": {"description": "An error in the OpenAI error shape"},
                },
            }
            params = [p for p in route.param_convertors]
            if params:
                operation["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in params
                ]
            suffix = next((k for k in _BODIES if k[0] == method and path.endswith(k[1])), None)
            if suffix is not None:
                operation["requestBody"] = {
                    "content": {"application/json": {"schema": _BODIES[suffix].model_json_schema()}}
                }
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "cupola", "version": __version__},
        "paths": paths,
    }


def routes(app_routes: list[BaseRoute]) -> list[Route]:
    document: dict[str, Any] = {}

    async def healthz(_request: Request) -> Response:
        """Liveness: the server is up."""
        return JSONResponse({"status": "ok", "version": __version__})

    async def openapi(_request: Request) -> Response:
        """This document."""
        if not document:
            document.update(openapi_document(app_routes))
        return JSONResponse(document)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
