"""Loopback fakes of the Azure OpenAI and Anthropic wire formats, for adapter tests.

Each fake is a Starlette app served by uvicorn in a background thread on ``127.0.0.1``
(ephemeral port, HTTPS when given a certificate). A test registers :class:`Answer` objects
under a key (Azure: the deployment; Anthropic: the ``model``); each request takes the next
answer of its key (the last one repeats). Every request is recorded with its path, query,
headers and JSON body.

The payloads are shaped as the services document them: Azure's stream opens with a chunk
of ``prompt_filter_results`` and empty ``choices``, and each content chunk carries
``content_filter_results``; Anthropic streams ``event:`` / ``data:`` pairs
(``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``,
``content_block_stop``, ``message_delta``, ``message_stop``); errors use each service's body
(``{"error": {"code", "message"}}``; ``{"type": "error", "error": {"type", "message"}}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from loopback import Connections, serve_app

Event = tuple[str | None, dict[str, Any] | str]
"""One server-sent event: its ``event:`` name (or None) and its data (a dict is sent as JSON,
a str verbatim)."""


@dataclass
class Answer:
    """One answer of a fake: an error status, or a stream of events."""

    events: Sequence[Event] = ()
    status: int = 200
    body: Any = None
    """The JSON body of a non-200 answer."""
    headers: dict[str, str] = field(default_factory=dict)
    done: bool = False
    """Send ``data: [DONE]`` after the events (Chat Completions)."""
    drop: bool = False
    """Break the connection after the events."""


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-cased names."""
    body: dict[str, Any]


class _Dropped(Exception):
    """Raised inside a stream to make the server break the connection."""


class FakeUpstream:
    """Answers and records; subclasses add the routes of one wire format."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[Received] = []
        self._answers: dict[str, list[Answer]] = {}
        self.connections = Connections()
        """TCP connections accepted (each call on a fresh one would add one)."""

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def answer(self, key: str, *answers: Answer) -> None:
        """Answer the requests of ``key`` with ``answers`` in turn (the last one repeats)."""
        self._answers[key] = list(answers)

    def received(self, key: str) -> list[Received]:
        raise NotImplementedError

    async def record(self, request: Request) -> Received:
        raw = await request.body()
        seen = Received(
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            orjson.loads(raw) if raw else {},
        )
        self.requests.append(seen)
        return seen

    def next_answer(self, key: str) -> Answer | None:
        queue = self._answers.get(key)
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]

    @staticmethod
    def respond(answer: Answer) -> Response:
        if answer.status != 200:
            return Response(
                orjson.dumps(answer.body or {}),
                answer.status,
                headers=answer.headers,
                media_type="application/json",
            )
        return StreamingResponse(
            _sse(answer), headers=answer.headers, media_type="text/event-stream"
        )


async def _sse(answer: Answer) -> AsyncIterator[bytes]:
    for name, data in answer.events:
        text = data if isinstance(data, str) else orjson.dumps(data).decode()
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {text}\n\n".encode()
    if answer.drop:
        raise _Dropped("the fake upstream drops this stream")
    if answer.done:
        yield b"data: [DONE]\n\n"


@contextmanager
def serve(upstream: FakeUpstream, cert: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve ``upstream`` on an ephemeral loopback port; yields its root URL."""
    app = Starlette(routes=upstream.routes())
    with serve_app(app, type(upstream).__name__, cert, upstream.connections) as port:
        upstream.base_url = f"{'https' if cert else 'http'}://127.0.0.1:{port}"
        yield upstream.base_url


# -- Azure OpenAI -------------------------------------------------------------------------

_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}


def azure_prompt_filter_chunk() -> Event:
    """Azure's first chunk: the prompt's content-filter results, no choices."""
    data = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {
                    **CONTENT_FILTER,
                    "jailbreak": {"filtered": False, "detected": False},
                },
            }
        ],
    }
    return (None, data)


def azure_chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    model: str = "gpt-4o-2024-11-20",
) -> Event:
    """A ``chat.completion.chunk`` as Azure streams it (filter results on content chunks)."""
    choices: list[dict[str, Any]] = []
    if delta is not None or finish is not None:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "delta": delta or {}}
        if delta and delta.get("content"):
            choice["content_filter_results"] = CONTENT_FILTER
        choice["logprobs"] = None
        choices.append(choice)
    data: dict[str, Any] = {
        "id": "chatcmpl-AzUr3fake",
        "object": "chat.completion.chunk",
        "created": 1733000000,
        "model": model,
        "system_fingerprint": "fp_azure01",
        "choices": choices,
    }
    data["usage"] = usage
    return (None, data)


def azure_usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": cached},
        "completion_tokens_details": {"audio_tokens": 0, "reasoning_tokens": 0},
    }


def azure_text(pieces: Sequence[str], usage: dict[str, Any] | None = None) -> list[Event]:
    events = [azure_prompt_filter_chunk(), azure_chunk({"content": "", "role": "assistant"})]
    events += [azure_chunk({"content": piece}) for piece in pieces]
    events.append(azure_chunk({}, finish="stop"))
    events.append(azure_chunk(usage=usage or azure_usage(10, len(pieces))))
    return events


def azure_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeAzureOpenAI(FakeUpstream):
    """``/openai/deployments/{deployment}/chat/completions?api-version=...`` and the v1
    ``/openai/v1/chat/completions`` (deployment in ``model``)."""

    def routes(self) -> list[Route]:
        return [
            Route(
                "/openai/deployments/{deployment}/chat/completions",
                self._deployment,
                methods=["POST"],
            ),
            Route("/openai/v1/chat/completions", self._v1, methods=["POST"]),
        ]

    def received(self, key: str) -> list[Received]:
        return [r for r in self.requests if _azure_key(r) == key]

    async def _deployment(self, request: Request) -> Response:
        seen = await self.record(request)
        if "api-version" not in seen.query:
            body = azure_error(404, "404", "Resource not found")
            return Response(orjson.dumps(body), 404, media_type="application/json")
        return self._answer(_azure_key(seen), seen)

    async def _v1(self, request: Request) -> Response:
        seen = await self.record(request)
        return self._answer(_azure_key(seen), seen)

    def _answer(self, key: str, seen: Received) -> Response:
        if not (seen.headers.get("api-key") or seen.headers.get("authorization")):
            body = azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource.",
            )
            return Response(orjson.dumps(body), 401, media_type="application/json")
        answer = self.next_answer(key)
        if answer is None:
            text = str((seen.body.get("messages") or [{}])[-1].get("content") or "")
            answer = Answer(azure_text(["echo: ", text]), done=True)
        return self.respond(answer)


def _azure_key(seen: Received) -> str:
    if seen.path.startswith("/openai/deployments/"):
        return seen.path.split("/")[3]
    return str(seen.body.get("model", ""))


# -- Anthropic ----------------------------------------------------------------------------


def anthropic_start(model: str, input_tokens: int, cache_read: int = 0) -> Event:
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read,
            "output_tokens": 1,
        },
    }
    return ("message_start", {"type": "message_start", "message": message})


def anthropic_end(stop_reason: str, output_tokens: int) -> list[Event]:
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }
    return [("message_delta", delta), ("message_stop", {"type": "message_stop"})]


def anthropic_text_block(index: int, pieces: Sequence[str]) -> list[Event]:
    events: list[Event] = [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
    ]
    if index == 0:
        events.append(("ping", {"type": "ping"}))
    for piece in pieces:
        delta = {"type": "text_delta", "text": piece}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def anthropic_tool_block(index: int, call_id: str, name: str, pieces: Sequence[str]) -> list[Event]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    events: list[Event] = [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
    ]
    for piece in pieces:
        delta = {"type": "input_json_delta", "partial_json": piece}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def anthropic_text(model: str, pieces: Sequence[str], input_tokens: int = 12) -> list[Event]:
    return [
        anthropic_start(model, input_tokens),
        *anthropic_text_block(0, pieces),
        *anthropic_end("end_turn", len(pieces)),
    ]


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def fake_token_count(body: dict[str, Any]) -> int:
    """What :class:`FakeAnthropic` answers to ``count_tokens`` for ``body``."""
    texts = [body.get("system") or ""]
    for message in body.get("messages", []):
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"text": content}]
        texts += [str(b.get("text", "")) for b in blocks]
    return sum(len(t.split()) for t in texts) + 3 * len(body.get("messages", []))


class FakeAnthropic(FakeUpstream):
    """``POST /v1/messages`` (and ``/anthropic/v1/messages``, as a Foundry resource serves
    it), keyed by ``model``."""

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/anthropic/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self._count, methods=["POST"]),
        ]

    def received(self, key: str) -> list[Received]:
        return [r for r in self.requests if r.body.get("model") == key]

    async def _count(self, request: Request) -> Response:
        """A stand-in tokenizer: one token per word of the system prompt and the messages'
        text, plus three per message."""
        seen = await self.record(request)
        if not (seen.headers.get("x-api-key") or seen.headers.get("authorization")):
            body = anthropic_error("authentication_error", "x-api-key header is required")
            return Response(orjson.dumps(body), 401, media_type="application/json")
        if "max_tokens" in seen.body or "stream" in seen.body:
            body = anthropic_error("invalid_request_error", "max_tokens: Extra inputs")
            return Response(orjson.dumps(body), 400, media_type="application/json")
        return Response(orjson.dumps({"input_tokens": fake_token_count(seen.body)}))

    async def _messages(self, request: Request) -> Response:
        seen = await self.record(request)
        if not seen.headers.get("anthropic-version"):
            body = anthropic_error("invalid_request_error", "anthropic-version: header is required")
            return Response(orjson.dumps(body), 400, media_type="application/json")
        if not (seen.headers.get("x-api-key") or seen.headers.get("authorization")):
            body = anthropic_error("authentication_error", "x-api-key header is required")
            return Response(orjson.dumps(body), 401, media_type="application/json")
        if not isinstance(seen.body.get("max_tokens"), int):
            body = anthropic_error("invalid_request_error", "max_tokens: Field required")
            return Response(orjson.dumps(body), 400, media_type="application/json")
        model = str(seen.body.get("model", ""))
        answer = self.next_answer(model)
        if answer is None:
            last = (seen.body.get("messages") or [{}])[-1].get("content")
            answer = Answer(anthropic_text(model, ["echo: ", str(last)]))
        return self.respond(answer)
