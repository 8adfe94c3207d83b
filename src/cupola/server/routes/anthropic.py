"""``/anthropic/v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API
over the agent runtime, as the ``anthropic`` SDKs and Claude Code (with its Foundry settings:
``ANTHROPIC_FOUNDRY_BASE_URL=http://HOST:PORT/anthropic``) call it.

Errors on these routes take Anthropic's shape, ``{"type": "error", "error": {"type",
"message"}}``. The ``anthropic-version`` and ``anthropic-beta`` headers are accepted and
not checked; a query string (Claude Code sends ``?beta=true``) is ignored.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cupola.exceptions import CupolaError, ProviderError
from cupola.models.base import ModelRequest, ToolCall, Usage
from cupola.runtime.stateless import (
    CallPiece,
    CallStart,
    ClientEvent,
    Outcome,
    StatelessRun,
    TextPiece,
    TextStart,
    arguments_object,
    resolve_target,
)
from cupola.server.http import JSONResponse, parse_body
from cupola.server.openapi import anthropic_api
from cupola.server.routes.chat import (
    ClientGone,
    first_event,
    gone,
    report_headers,
    start_headers,
    unless_gone,
)
from cupola.server.schemas.anthropic import (
    STOP_REASONS,
    CountTokensRequest,
    Message,
    MessagesRequest,
    TokenCount,
    to_runtime,
)
from cupola.server.services import Services

log = logging.getLogger("cupola.server")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
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


def error_object(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_response(exc: Exception) -> Response:
    if isinstance(exc, CupolaError):
        status, message = exc.status_code, exc.message
        if exc.status_code >= 500 and not isinstance(exc, ProviderError):
            log.error("%s: %s", type(exc).__name__, exc.message)
    else:
        log.exception("unhandled error", exc_info=exc)
        status, message = 500, "internal server error"
    headers = {"x-should-retry": "false"} if 400 <= status < 500 and status != 429 else None
    return Response(
        orjson.dumps(error_object(status, message)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def anthropic_errors(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Answer every error of ``endpoint`` in Anthropic's shape."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientDisconnect:
            raise  # nobody to answer; not an error (the error boundary logs it at DEBUG)
        except Exception as exc:
            return error_response(exc)

    guarded.__doc__ = endpoint.__doc__
    guarded.__name__ = endpoint.__name__
    return guarded


def usage_object(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads apart from ``input_tokens``."""
    return {
        "input_tokens": usage.input_tokens - usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call.call_id,
        "name": call.name,
        "input": arguments_object(call),
    }


def message_object(message_id: str, model: str, outcome: Outcome) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": t} for t in outcome.texts if t]
    content += [tool_use_block(c) for c in outcome.calls]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[outcome.finish],
        "stop_sequence": None,
        "usage": usage_object(outcome.usage),
    }


def frame(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class BlockWriter:
    """Content blocks of one streamed message, one open at a time, numbered from 0."""

    def __init__(self) -> None:
        self.count = 0
        self.open: str | None = None
        """``"text"`` or the call index (as text) of the open block."""

    def _start(self, key: str, block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.open = key
        out.append(frame("content_block_start", {"index": self.count, "content_block": block}))
        return out

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        self.count += 1
        return [frame("content_block_stop", {"index": self.count - 1})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return frame("content_block_delta", {"index": self.count, "delta": delta})

    def event(self, event: ClientEvent) -> list[bytes]:
        if isinstance(event, TextStart):
            return self._start("text", {"type": "text", "text": ""})
        if isinstance(event, TextPiece):
            if not event.text:
                return []
            out = [] if self.open == "text" else self._start("text", {"type": "text", "text": ""})
            return [*out, self._delta({"type": "text_delta", "text": event.text})]
        if isinstance(event, CallStart):
            block = {"type": "tool_use", "id": event.call_id, "name": event.name, "input": {}}
            return self._start(str(event.index), block)
        assert isinstance(event, CallPiece)
        if not event.arguments:
            return []
        if self.open != str(event.index):
            raise ProviderError(
                "the model interleaved the arguments of parallel tool calls, which a Messages "
                "stream cannot carry; retry with tool_choice.disable_parallel_tool_use"
            )
        return [self._delta({"type": "input_json_delta", "partial_json": event.arguments})]


async def _events(
    run: StatelessRun,
    events: AsyncIterator[ClientEvent],
    first: ClientEvent | None,
    start: dict[str, Any],
) -> AsyncIterator[bytes]:
    yield frame("message_start", {"message": start})
    blocks = BlockWriter()
    try:
        if first is not None:
            for data in blocks.event(first):
                yield data
            async for event in events:
                for data in blocks.event(event):
                    yield data
    except Exception as exc:  # the stream has begun: the error goes in it
        if not isinstance(exc, CupolaError):
            log.error("messages stream failed", exc_info=exc)
        status = exc.status_code if isinstance(exc, CupolaError) else 500
        message = exc.message if isinstance(exc, CupolaError) else "internal server error"
        yield frame("error", {"error": error_object(status, message)["error"]})
        return
    for data in blocks.close():
        yield data
    outcome = run.outcome()
    delta = {"stop_reason": STOP_REASONS[outcome.finish], "stop_sequence": None}
    yield frame("message_delta", {"delta": delta, "usage": usage_object(outcome.usage)})
    yield frame("message_stop", {})


def routes(s: Services) -> list[Route]:
    async def create(request: Request) -> Response:
        """Create a message (Anthropic Messages API); ``stream: true`` answers with SSE."""
        project = s.project(request)
        req = await parse_body(request, MessagesRequest)
        target = await resolve_target(s.store, s.models, project, req.model)
        create_req, options = to_runtime(req, target, stream=bool(req.stream))
        prepared = await s.runner.prepare(project, create_req)
        prepared.use_options(options)
        run = s.runner.stateless(prepared, "messages")
        message_id = f"msg_{secrets.token_hex(12)}"
        try:
            if not req.stream:
                outcome = await unless_gone(request, run.run())
                body = message_object(message_id, req.model, outcome)
                return JSONResponse(body, headers=report_headers(outcome.report))
            events = run.events()
            first = await unless_gone(request, first_event(events))
        except ClientGone:
            return gone()
        start: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return StreamingResponse(
            _events(run, events, first, start),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **start_headers(prepared)},
        )

    async def count_tokens(request: Request) -> Response:
        """Count a message request's input tokens (exact when the deployment can count)."""
        project = s.project(request)
        req = await parse_body(request, CountTokensRequest)
        target = await resolve_target(s.store, s.models, project, req.model)
        create_req, _ = to_runtime(req, target)
        prepared = await s.runner.prepare(project, create_req)
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
