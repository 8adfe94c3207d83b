"""``POST /chat/completions``: the OpenAI Chat Completions API over the agent runtime.

The body is translated into a Responses request (not stored), run by the response service
(runtime/services/responses.py) through the same agent loop, and rendered
(server/render/chat.py) as a ``chat.completion`` or as ``chat.completion.chunk`` server-sent
events.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cupola.exceptions import UserError
from cupola.ids import now
from cupola.runtime.events import RunEvent, RunOutcome
from cupola.runtime.request import CreateResponse, ModelOptions
from cupola.runtime.stateless import StatelessRun
from cupola.server.http import JSONResponse, parse_body
from cupola.server.openapi import api
from cupola.server.render.chat import (
    ChunkWriter,
    chunks,
    client_visible,
    completion_object,
    report_headers,
    start_headers,
)
from cupola.server.schemas.chat import ChatCompletion, ChatCompletionRequest, to_runtime
from cupola.server.services import Services

T = TypeVar("T")
CLIENT_GONE = 499
"""The status logged for a request whose client disconnected before the answer (nginx's
"client closed request"); the client never sees it."""
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _disconnected(request: Request) -> None:
    """Returns once the client has disconnected (its body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; when the client disconnects first, ``work`` (the run, and with it
    the model call) is cancelled and over before :class:`ClientGone` is raised, so nothing
    goes on for a client that has gone. Once a stream has begun, Starlette's
    ``StreamingResponse`` does the same.

    ``work`` runs in the request's own task; a second task waits for the disconnect and
    cancels this one (cheaper than running ``work`` in a task of its own)."""
    current = asyncio.current_task()
    if current is None:
        return await work
    gone = False

    def on_disconnect(watch: asyncio.Future[None]) -> None:
        nonlocal gone
        if not watch.cancelled() and watch.exception() is None:
            gone = True
            current.cancel()

    watch = asyncio.ensure_future(_disconnected(request))
    watch.add_done_callback(on_disconnect)
    try:
        return await work
    except asyncio.CancelledError:
        if gone and current.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        watch.remove_done_callback(on_disconnect)
        watch.cancel()


def gone() -> Response:
    """What a route returns for a client that has gone (nobody reads it)."""
    return Response(status_code=CLIENT_GONE)


async def first_event(
    events: AsyncIterator[RunEvent | RunOutcome],
    visible: Callable[[RunEvent | RunOutcome], bool] = client_visible,
) -> RunEvent | RunOutcome | None:
    """The run's first event the client sees (errors before it are still ordinary HTTP
    errors); events of server tools before it are passed over."""
    async for event in events:
        if visible(event):
            return event
    return None


async def stateless(
    s: Services, project: str, req: CreateResponse, options: ModelOptions
) -> StatelessRun:
    """The prepared run, with errors about ``text.format`` named as chat clients know it."""
    try:
        return await s.responses.stateless(project, req, options, "chat.completions")
    except UserError as exc:
        if exc.param and exc.param.startswith("text.format"):
            rename = "response_format.json_schema"
            exc.message = exc.message.replace("text.format", rename)
            exc.param = exc.param.replace("text.format", rename)
        raise


def routes(s: Services) -> list[Route]:
    @api(body=ChatCompletionRequest, response=ChatCompletion, stream=True)
    async def create(request: Request) -> Response:
        """Create a chat completion (Chat Completions API); ``stream: true`` answers with SSE."""
        project = s.project(request)
        req = await parse_body(request, ChatCompletionRequest)
        target = await s.responses.target(project, req.model)
        create_req, options = to_runtime(req, target)
        run = await stateless(s, project, create_req, options)
        completion_id, created = f"chatcmpl-{secrets.token_hex(14)}", now()
        try:
            if not req.stream:
                outcome = await unless_gone(request, run.run())
                body = completion_object(completion_id, created, req.model, outcome)
                return JSONResponse(body, headers=report_headers(run.report(outcome)))
            events = run.events()
            first = await unless_gone(request, first_event(events))
        except ClientGone:
            return gone()
        writer = ChunkWriter(completion_id, created, req.model, req.include_usage)
        return StreamingResponse(
            chunks(first, events, writer, req.include_usage),
            media_type="text/event-stream",
            headers={**_SSE_HEADERS, **start_headers(run.prepared)},
        )

    return [Route("/chat/completions", create, methods=["POST"])]
