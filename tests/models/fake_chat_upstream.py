"""A fake OpenAI-compatible Chat Completions server on loopback, for adapter tests.

A Starlette app served by uvicorn in a background thread on ``127.0.0.1`` (ephemeral port).
``POST /v1/chat/completions`` answers in stream (SSE) or non-stream (JSON) form, with the
behaviour a test registers for the request's ``model`` (:meth:`FakeChatUpstream.reply`), so
tests sharing the server stay independent by using their own model names. Unregistered
models get ``echo: <last message content>``. Every request body and its headers are recorded.

Use the ``fake_upstream`` fixture; ``fake_upstream.base_url`` is the ``/v1`` root.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from loopback import Connections, serve_app

Chunk = dict[str, Any] | str
"""A stream chunk: a dict is sent as ``data: <json>``; a str is sent verbatim as the data."""


@dataclass
class Reply:
    """How the fake answers one model name."""

    chunks: Sequence[Chunk] = ()
    status: int = 200
    """Anything but 200 answers ``error`` as an OpenAI error body with this status."""
    error: dict[str, Any] | None = None
    """The error body (``{"error": {"message", "type", "code"}}``) for a non-200 status."""
    done: bool = True
    """Send ``data: [DONE]`` after the chunks."""
    drop: bool = False
    """Break the connection after the chunks (an incomplete chunked body)."""
    ignore_stream: bool = False
    """Answer one JSON completion even when the request asked for a stream."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    gate: threading.Event | None = None
    """When set, hold the stream after the first chunk until the event is set (max 5 s)."""


@dataclass(frozen=True)
class Received:
    """One request the fake received."""

    body: dict[str, Any]
    headers: dict[str, str]
    """Lower-cased header names."""


def chunk(
    model: str,
    delta: dict[str, Any] | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; without ``delta`` and ``finish`` it has empty choices."""
    choices = []
    if delta is not None or finish is not None:
        choices = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    data: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        data["usage"] = usage
    return data


def usage_body(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def text_chunks(
    pieces: list[str], *, model: str = "fake-model", usage: dict[str, Any] | None = None
) -> list[Chunk]:
    """A streamed text reply: role chunk, one chunk per piece, finish, then a usage chunk."""
    out: list[Chunk] = [chunk(model, {"role": "assistant", "content": ""})]
    out += [chunk(model, {"content": piece}) for piece in pieces]
    out.append(chunk(model, {}, finish="stop"))
    if usage is not None:
        out.append(chunk(model, usage=usage))
    return out


def completion_from_chunks(chunks: Sequence[Chunk]) -> dict[str, Any]:
    """The non-stream ``chat.completion`` the given stream chunks add up to."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish, usage, model = None, None, "fake-model"
    for item in chunks:
        if not isinstance(item, dict):
            continue
        model = item.get("model", model)
        usage = item.get("usage") or usage
        for choice in item.get("choices", []):
            delta = choice.get("delta", {})
            text.append(delta.get("content") or "")
            for frag in delta.get("tool_calls") or []:
                call = calls.setdefault(
                    frag["index"], {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                call["id"] = frag.get("id") or call.get("id")
                fn = frag.get("function", {})
                call["function"]["name"] += fn.get("name") or ""
                call["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


class _Dropped(Exception):
    """Raised inside the stream to make the server break the connection."""


class FakeChatUpstream:
    """The fake server's state: registered replies and received requests."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[Received] = []
        self._replies: dict[str, Reply] = {}
        self.connections = Connections()
        """TCP connections accepted (each call on a fresh one would add one)."""
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def reply(self, model: str, reply: Reply) -> None:
        """Answer every request for ``model`` with ``reply``."""
        self._replies[model] = reply

    def received(self, model: str) -> list[Received]:
        """The requests received for ``model``, oldest first."""
        return [r for r in self.requests if r.body.get("model") == model]

    def last(self, model: str) -> Received:
        return self.received(model)[-1]

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(Received(body, {k.lower(): v for k, v in request.headers.items()}))
        model = body.get("model", "")
        reply = self._replies.get(model) or self._echo(model, body)
        if reply.delay:
            await anyio.sleep(reply.delay)
        if reply.status != 200:
            error = reply.error or {"error": {"message": "fake failure", "type": "server_error"}}
            return Response(orjson.dumps(error), reply.status, media_type="application/json")
        if not body.get("stream") or reply.ignore_stream:
            completion = completion_from_chunks(reply.chunks)
            return Response(orjson.dumps(completion), media_type="application/json")
        return StreamingResponse(self._sse(reply), media_type="text/event-stream")

    @staticmethod
    def _echo(model: str, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or [{}]
        content = messages[-1].get("content") or ""
        usage = usage_body(len(messages), 2)
        return Reply(text_chunks(["echo: ", str(content)], model=model, usage=usage))

    @staticmethod
    async def _sse(reply: Reply) -> AsyncIterator[bytes]:
        for i, item in enumerate(reply.chunks):
            data = item if isinstance(item, str) else orjson.dumps(item).decode()
            yield f"data: {data}\n\n".encode()
            if i == 0 and reply.gate is not None:
                await anyio.to_thread.run_sync(reply.gate.wait, 5.0)
        if reply.drop:
            raise _Dropped("the fake upstream drops this stream")
        if reply.done:
            yield b"data: [DONE]\n\n"


@contextmanager
def serve_fake_upstream() -> Iterator[FakeChatUpstream]:
    """Run a :class:`FakeChatUpstream` on an ephemeral loopback port while in the block."""
    upstream = FakeChatUpstream()
    with serve_app(upstream.app, "fake-chat-upstream", connections=upstream.connections) as port:
        upstream.base_url = f"http://127.0.0.1:{port}/v1"
        yield upstream


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeChatUpstream]:
    """A fake OpenAI-compatible upstream shared by the session."""
    with serve_fake_upstream() as upstream:
        yield upstream
