"""``/healthz`` and ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cupola import __version__
from cupola.server.http import JSONResponse
from cupola.server.openapi import api, openapi_document
from cupola.server.schemas.common import OpenAPIDocument, Status


def routes(app_routes: list[BaseRoute]) -> list[Route]:
    """The meta routes; ``app_routes`` is the app's final route list (these included), which
    the document describes."""
    document: dict[str, Any] = {}

    @api(response=Status)
    async def healthz(_request: Request) -> Response:
        """Liveness: the server is up."""
        return JSONResponse({"status": "ok", "version": __version__})

    @api(response=OpenAPIDocument)
    async def openapi(_request: Request) -> Response:
        """This document (OpenAPI 3.1)."""
        if not document:
            document.update(openapi_document(app_routes))
        return JSONResponse(document)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
