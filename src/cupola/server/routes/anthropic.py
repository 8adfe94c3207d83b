"""``/anthropic/v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API
over the agent runtime, as the ``anthropic`` SDKs and Claude Code (with its Foundry settings:
``ANTHROPIC_FOUNDRY_BASE_URL=http://HOST:PORT/anthropic``) call it. Runs go through the
response service; server/render/anthropic.py writes the answer.

Errors on these routes take Anthropic's shape, ``{"type": "error", "error": {"type",
"message"}}``. The ``anthropic-version`` and ``anthropic-beta`` headers are accepted and
not checked; a query string (Claude Code sends ``?beta=true``) is ignored.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cupola.models.base import ModelRequest
from cupola.server.http import JSONResponse, parse_body
from cupola.server.openapi import anthropic_api
from cupola.server.render.anthropic import message_events, message_object, start_object
from cupola.server.render.chat import report_headers, start_headers
from cupola.server.render.errors import anthropic_error, classified
from cupola.server.routes.chat import ClientGone, first_event, gone, unless_gone
from cupola.server.schemas.anthropic import (
    CountTokensRequest,
    Message,
    MessagesRequest,
    TokenCount,
    to_runtime,
)
from cupola.server.services import Services

CHARS_PER_TOKEN = 4
"""The estimate's rule of thumb (English prose; code and other languages run denser)."""
TOKENS_PER_MESSAGE = 4
"""The estimate's allowance for each message's role and framing."""


def estimate_tokens(request: ModelRequest) -> int:
    """About four characters per token over every text the model is sent (messages, tool
    calls, tool definitions as JSON), plus four tokens per message."""
    chars = 0
    for message in request.messages:
        chars += len(message.content)
        chars += sum(len(c.name) + len(c.arguments) for c in message.tool_calls)
    for tool in request.tools:
        chars += len(orjson.dumps([tool.name, tool.description, tool.parameters]))
    if request.response_format is not None:
        chars += len(orjson.dumps(request.response_format))
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)


def anthropic_errors(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Answer every error of ``endpoint`` in Anthropic's shape."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientDisconnect:
            raise  # nobody to answer; not an error (the error boundary logs it at DEBUG)
        except Exception as exc:  # the endpoint: each error answered in this API's shape
            return anthropic_error(classified(exc, f"{request.method} {request.url.path}"))

    guarded.__doc__ = endpoint.__doc__
    guarded.__name__ = endpoint.__name__
    return guarded


def routes(s: Services) -> list[Route]:
    async def create(request: Request) -> Response:
        """Create a message (Anthropic Messages API); ``stream: true`` answers with SSE."""
        project = s.project(request)
        req = await parse_body(request, MessagesRequest)
        target = await s.responses.target(project, req.model)
        create_req, options = to_runtime(req, target, stream=bool(req.stream))
        run = await s.responses.stateless(project, create_req, options, "messages")
        message_id = f"msg_{secrets.token_hex(12)}"
        try:
            if not req.stream:
                outcome = await unless_gone(request, run.run())
                body = message_object(message_id, req.model, outcome)
                return JSONResponse(body, headers=report_headers(run.report(outcome)))
            events = run.events()
            first = await unless_gone(request, first_event(events))
        except ClientGone:
            return gone()
        return StreamingResponse(
            message_events(start_object(message_id, req.model), first, events),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **start_headers(run.prepared)},
        )

    async def count_tokens(request: Request) -> Response:
        """Count a message request's input tokens (exact when the deployment can count)."""
        project = s.project(request)
        req = await parse_body(request, CountTokensRequest)
        target = await s.responses.target(project, req.model)
        create_req, _ = to_runtime(req, target)
        prepared = await s.responses.prepare(project, create_req)
        count = await prepared.model.count_tokens(prepared.model_request)
        if count is None:
            count = estimate_tokens(prepared.model_request)
        return JSONResponse({"input_tokens": count})

    return [
        Route(
            "/v1/messages",
            anthropic_api(body=MessagesRequest, response=Message, stream=True)(
                anthropic_errors(create)
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/messages/count_tokens",
            anthropic_api(body=CountTokensRequest, response=TokenCount)(
                anthropic_errors(count_tokens)
            ),
            methods=["POST"],
        ),
    ]
