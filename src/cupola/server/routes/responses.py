"""``/responses``: create (JSON or SSE), retrieve, delete, cancel, input_items. Runs go
through the response service (runtime/services/responses.py); their events are rendered by
server/render/responses_sse.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cupola.exceptions import NotFound
from cupola.runtime.request import CreateResponse
from cupola.server.http import JSONResponse, list_envelope, parse_body, query_int, query_order
from cupola.server.openapi import PAGE, api
from cupola.server.render.responses_sse import sse
from cupola.server.schemas.common import Deleted
from cupola.server.schemas.objects import ItemPage
from cupola.server.schemas.responses import ResponseObject
from cupola.server.services import Services


def routes(s: Services) -> list[Route]:
    @api(
        body=CreateResponse,
        response=ResponseObject,
        stream=True,
        summary="Create a response (JSON, or Server-Sent Events when stream is true).",
    )
    async def create(request: Request) -> Response:
        project = s.project(request)
        req = await parse_body(request, CreateResponse)
        if not req.stream:
            return JSONResponse(await s.responses.create(project, req))
        return StreamingResponse(
            sse(await s.responses.stream(project, req)),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @api(response=ResponseObject, summary="Retrieve a stored response.")
    async def retrieve(request: Request) -> Response:
        stored = await s.store.get_response(s.project(request), request.path_params["response_id"])
        return JSONResponse(stored.body)

    @api(response=Deleted, summary="Delete a stored response.")
    async def delete(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        await s.store.delete_response(s.project(request), response_id)
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})

    @api(response=ResponseObject, summary="Cancel a background response.")
    async def cancel(request: Request) -> Response:
        body = await s.responses.cancel(s.project(request), request.path_params["response_id"])
        return JSONResponse(body)

    @api(response=ItemPage, query=PAGE, summary="List a response's input items.")
    async def input_items(request: Request) -> Response:
        stored = await s.store.get_response(s.project(request), request.path_params["response_id"])
        limit = query_int(request, "limit", 20)
        order = query_order(request)
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        after = request.query_params.get("after")
        if after:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise NotFound(f"item {after!r} not found in the response's input", param="after")
            items = items[ids.index(after) + 1 :]
        return JSONResponse(list_envelope(items[:limit], len(items) > limit))

    return [
        Route("/responses", create, methods=["POST"]),
        Route("/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/responses/{response_id}", delete, methods=["DELETE"]),
        Route("/responses/{response_id}/cancel", cancel, methods=["POST"]),
        Route("/responses/{response_id}/input_items", input_items, methods=["GET"]),
    ]
