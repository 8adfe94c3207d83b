"""``POST /traces/export``: stored responses as Open Responses traces, one turn per
response, for evaluation tools that score traces (docs/observability.md, "Trace export";
the conversion is :mod:`cupola.runtime.services.export`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.runtime.services.export import MAX_RESPONSES, ExportService
from cupola.server.http import JSONResponse, parse_body
from cupola.server.openapi import api
from cupola.server.services import Services


class ExportRequest(BaseModel):
    """What to export: a conversation's responses, or named responses."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Every stored response of this conversation, oldest first."""
    response_ids: list[str] | None = Field(default=None, max_length=MAX_RESPONSES)
    """These responses, in this order."""
    format: Literal["open-responses"] = "open-responses"
    """The only format: Open Responses items (``function_call``, ``function_call_output``,
    ``message``)."""


class ExportDocument(BaseModel):
    """The exported turns."""

    object: Literal["list"]
    format: Literal["open-responses"]
    conversation_id: str | None = None
    data: list[dict[str, Any]]


def routes(s: Services) -> list[Route]:
    """The project's ``/traces/export`` route."""
    exporter = ExportService(s.store)

    @api(body=ExportRequest, response=ExportDocument, summary="Export responses as traces.")
    async def export(request: Request) -> Response:
        project = s.project(request)
        asked = await parse_body(request, ExportRequest)
        document = await exporter.export(
            project, conversation_id=asked.conversation_id, response_ids=asked.response_ids
        )
        return JSONResponse(document)

    return [Route("/traces/export", export, methods=["POST"])]
