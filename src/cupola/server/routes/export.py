"""``GET /traces/export``: stored responses as Open Responses traces, one turn per response,
for evaluation tools that score traces (docs/observability.md, "Trace export"; the
conversion is :mod:`cupola.runtime.services.export`).

``?conversation_id=conv_...`` exports every stored response of a conversation, oldest first;
``?response_ids=resp_a,resp_b`` (or the parameter repeated) the named ones, in that order.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.exceptions import UserError
from cupola.runtime.services.export import FORMAT, ExportService
from cupola.server.http import JSONResponse
from cupola.server.openapi import Query, api
from cupola.server.services import Services

QUERY = (
    Query("conversation_id", {"type": "string"}, "Every stored response of this conversation."),
    Query(
        "response_ids",
        {"type": "string"},
        "These responses, comma-separated (or the parameter repeated), in this order.",
    ),
    Query("format", {"type": "string", "enum": [FORMAT]}, "The only format: open-responses."),
)


class ExportDocument(BaseModel):
    """The exported turns."""

    object: Literal["list"]
    format: Literal["open-responses"]
    conversation_id: str | None = None
    data: list[dict[str, Any]]


def _response_ids(request: Request) -> list[str] | None:
    values = request.query_params.getlist("response_ids")
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def routes(s: Services) -> list[Route]:
    """The project's ``/traces/export`` route."""
    exporter = ExportService(s.store)

    @api(response=ExportDocument, query=QUERY, summary="Export responses as traces.")
    async def export(request: Request) -> Response:
        project = s.project(request)
        asked = request.query_params.get("format") or FORMAT
        if asked != FORMAT:
            raise UserError(f"format must be {FORMAT}", param="format")
        document = await exporter.export(
            project,
            conversation_id=request.query_params.get("conversation_id") or None,
            response_ids=_response_ids(request),
        )
        return JSONResponse(document)

    return [Route("/traces/export", export, methods=["GET"])]
