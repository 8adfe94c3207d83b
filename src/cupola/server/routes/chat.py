"""``POST /chat/completions``: the OpenAI Chat Completions API over the agent runtime.

The body is translated into a Responses request (not stored), run by the same agent loop,
and answered as a ``chat.completion`` or as ``chat.completion.chunk`` server-sent events.
How the call was served (the deployment, attempts, parameter adjustments) goes in
``x-cupola-*`` headers so the body keeps exactly the OpenAI shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cupola.exceptions import CupolaError, UserError
from cupola.ids import now
from cupola.models.base import CallReport, Usage
from cupola.runtime.prepare import Prepared
from cupola.runtime.request import CreateResponse
from cupola.runtime.stateless import (
    CallPiece,
    CallStart,
    ClientEvent,
    Outcome,
    StatelessRun,
    TextPiece,
    TextStart,
    resolve_target,
)
from cupola.server.http import JSONResponse, parse_body
from cupola.server.openapi import api
from cupola.server.schemas.chat import ChatCompletion, ChatCompletionRequest, to_runtime
from cupola.server.services import Services

log = logging.getLogger("cupola.server")
T = TypeVar("T")
CLIENT_GONE = 499
"""The status logged for a request whose client disconnected before the answer (nginx's
"client closed request"); the client never sees it."""
MESSAGE_BREAK = "\n\n"
"""Between the texts of two assistant messages of one run (around a server-side tool)."""
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def report_headers(report: CallReport) -> dict[str, str]:
    """``x-cupola-deployment``, ``x-cupola-attempts`` and, when any parameter was changed on
    its way upstream, ``x-cupola-adjustments`` (a JSON list of ``{param, action, detail}``)."""
    headers = {"x-cupola-attempts": str(report.attempts)}
    if report.deployment:
        headers["x-cupola-deployment"] = report.deployment
    if report.adjustments:
        adjustments = [a.as_dict() for a in report.adjustments]
        headers["x-cupola-adjustments"] = json.dumps(adjustments, separators=(",", ":"))
    return headers


def start_headers(prepared: Prepared) -> dict[str, str]:
    """What is known when a stream starts: the deployment the request resolved to."""
    return {"x-cupola-deployment": prepared.model.name}


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_object(completion_id: str, created: int, model: str, outcome: Outcome) -> Any:
    text = MESSAGE_BREAK.join(t for t in outcome.texts if t)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not outcome.calls else None,
        "refusal": None,
    }
    if outcome.calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in outcome.calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": outcome.finish}
        ],
        "usage": usage_object(outcome.usage),
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Frames ``chat.completion.chunk`` events for one completion."""

    def __init__(self, completion_id: str, created: int, model: str, usage: bool) -> None:
        self.prefix = (
            b'{"id":'
            + orjson.dumps(completion_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":null'
        )
        self.head = self.prefix + (b',"usage":null' if usage else b"") + b',"choices":'
        self.texts = 0
        """Assistant messages begun so far (a later one is set off by a blank line)."""

    def choice(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + self.head + orjson.dumps([choice]) + b"}\n\n"

    def usage(self, usage: Usage) -> bytes:
        """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
        body = orjson.dumps(usage_object(usage))
        return b"data: " + self.prefix + b',"choices":[],"usage":' + body + b"}\n\n"

    def event(self, event: ClientEvent) -> bytes | None:
        if isinstance(event, TextPiece):
            return self.choice({"content": event.text}) if event.text else None
        if isinstance(event, TextStart):
            self.texts += 1
            return self.choice({"content": MESSAGE_BREAK}) if self.texts > 1 else None
        if isinstance(event, CallStart):
            call = {
                "index": event.index,
                "id": event.call_id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return self.choice({"tool_calls": [call]})
        assert isinstance(event, CallPiece)
        if not event.arguments:
            return None
        fragment = {"index": event.index, "function": {"arguments": event.arguments}}
        return self.choice({"tool_calls": [fragment]})


def error_frame(exc: Exception) -> bytes:
    """An error after the stream began, as the openai SDK reads it (and raises)."""
    if isinstance(exc, CupolaError):
        error = {"message": exc.message, "type": exc.error_type, "param": exc.param}
        error["code"] = exc.code or exc.error_type
    else:
        log.error("chat completion stream failed", exc_info=exc)
        error = {"message": "internal server error", "type": "server_error", "param": None}
        error["code"] = "server_error"
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


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


async def first_event(events: AsyncIterator[ClientEvent]) -> ClientEvent | None:
    """The run's first event (errors before it are still ordinary HTTP errors)."""
    async for event in events:
        return event
    return None


async def _chunks(
    run: StatelessRun,
    events: AsyncIterator[ClientEvent],
    first: ClientEvent | None,
    writer: ChunkWriter,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    yield writer.choice({"role": "assistant", "content": "", "refusal": None})
    try:
        if first is not None:
            frame = writer.event(first)
            if frame:
                yield frame
            async for event in events:
                frame = writer.event(event)
                if frame:
                    yield frame
    except Exception as exc:  # the stream has begun: the error goes in it
        yield error_frame(exc)
        return
    outcome = run.outcome()
    yield writer.choice({}, outcome.finish)
    if include_usage:
        yield writer.usage(outcome.usage)
    yield b"data: [DONE]\n\n"


async def prepare(s: Services, project: str, req: CreateResponse) -> Prepared:
    """``Runner.prepare``, with errors about ``text.format`` named as chat clients know it."""
    try:
        return await s.runner.prepare(project, req)
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
        target = await resolve_target(s.store, s.models, project, req.model)
        create_req, options = to_runtime(req, target)
        prepared = await prepare(s, project, create_req)
        prepared.use_options(options)
        run = s.runner.stateless(prepared, "chat.completions")
        completion_id, created = f"chatcmpl-{secrets.token_hex(14)}", now()
        try:
            if not req.stream:
                outcome = await unless_gone(request, run.run())
                body = completion_object(completion_id, created, req.model, outcome)
                return JSONResponse(body, headers=report_headers(outcome.report))
            events = run.events()
            first = await unless_gone(request, first_event(events))
        except ClientGone:
            return gone()
        writer = ChunkWriter(completion_id, created, req.model, req.include_usage)
        return StreamingResponse(
            _chunks(run, events, first, writer, req.include_usage),
            media_type="text/event-stream",
            headers={**_SSE_HEADERS, **start_headers(prepared)},
        )

    return [Route("/chat/completions", create, methods=["POST"])]
