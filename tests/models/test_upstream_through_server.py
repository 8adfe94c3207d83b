"""An ``openai`` deployment through a live server: upstream connections are reused whatever
the client endpoint, and a client that disconnects stops the model call.

The upstreams are loopback fakes: the shared Chat Completions fake, which counts the TCP
connections it accepts, and a slow one whose stream stalls (a model slow to go on) and
records when its client, cupola, goes away.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fake_chat_upstream
import openai
import orjson
import pytest
from fake_chat_upstream import FakeChatUpstream, chunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import live_server
from cupola.settings import DeploymentConfig
from live_server import LiveServer, make_settings, start_server
from loopback import serve_app

fake_upstream = fake_chat_upstream.fake_upstream  # the shared fixture, session-scoped

STALL_SECONDS = 60.0
"""How long the slow upstream stalls: far longer than any test waits."""
CANCEL_WITHIN = 5.0


class SlowUpstream:
    """``POST /v1/chat/completions`` that streams a role chunk (and, for model
    ``slow-text``, a first piece of text), then stalls; it records each request's arrival
    and the cancellation of its stream when the caller disconnects."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def reset(self) -> None:
        self.arrived.clear()
        self.cancelled.clear()
        self.finished.clear()

    async def _chat(self, request: Request) -> Response:
        model = orjson.loads(await request.body())["model"]
        self.arrived.set()
        return StreamingResponse(self._stream(model), media_type="text/event-stream")

    async def _stream(self, model: str) -> AsyncIterator[bytes]:
        try:
            yield b"data: " + orjson.dumps(chunk(model, {"role": "assistant", "content": ""}))
            yield b"\n\n"
            if model == "slow-text":
                yield b"data: " + orjson.dumps(chunk(model, {"content": "Hel"})) + b"\n\n"
            await asyncio.sleep(STALL_SECONDS)
            yield b"data: " + orjson.dumps(chunk(model, {}, finish="stop")) + b"\n\n"
            yield b"data: [DONE]\n\n"
            self.finished.set()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture(scope="module")
def slow() -> Iterator[SlowUpstream]:
    upstream = SlowUpstream()
    with serve_app(upstream.app, "slow-upstream") as port:
        upstream.base_url = f"http://127.0.0.1:{port}/v1"  # type: ignore[attr-defined]
        yield upstream


@pytest.fixture(scope="module")
def live(
    fake_upstream: FakeChatUpstream, slow: SlowUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    base: str = slow.base_url  # type: ignore[attr-defined]
    deployments = [
        *live_server.test_deployments(),
        DeploymentConfig(
            name="pooled", provider="openai", model="m-pooled", base_url=fake_upstream.base_url
        ),
        DeploymentConfig(name="slow-text", provider="openai", model="slow-text", base_url=base),
        DeploymentConfig(name="slow-silent", provider="openai", model="slow-silent", base_url=base),
    ]
    db: Path = tmp_path_factory.mktemp("through") / "cupola.db"
    server = start_server(make_settings(f"sqlite:///{db}", deployments=deployments))
    yield server
    server.stop()


def test_calls_through_every_client_endpoint_reuse_one_upstream_connection(
    live: LiveServer, fake_upstream: FakeChatUpstream
) -> None:
    """After warm-up, 100 sequential calls (Chat Completions and Responses, streamed and
    not) open no new connection to the upstream."""
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "hello"}]

    def chat() -> str:
        answer = client.chat.completions.create(model="pooled", messages=messages)
        return answer.choices[0].message.content or ""

    def chat_stream() -> str:
        stream = client.chat.completions.create(model="pooled", messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    def responses() -> str:
        return client.responses.create(model="pooled", input="hello").output_text

    def responses_stream() -> str:
        with client.responses.stream(model="pooled", input="hello") as stream:
            return stream.get_final_response().output_text

    kinds = [chat, chat_stream, responses, responses_stream]
    for kind in kinds:  # warm-up
        assert kind() == "echo: hello"
    before = fake_upstream.connections.accepted
    for number in range(100):
        assert kinds[number % len(kinds)]() == "echo: hello"
    assert fake_upstream.connections.accepted == before

    def many() -> None:
        threads = [threading.Thread(target=kinds[i % len(kinds)]) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    before = fake_upstream.connections.accepted
    for _ in range(4):
        many()
    assert fake_upstream.connections.accepted - before <= 8  # grows to the concurrency once


def request_bytes(port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


CASES = [
    ("/v1/chat/completions", False, "slow-text"),
    ("/v1/chat/completions", True, "slow-silent"),
    ("/v1/chat/completions", True, "slow-text"),
    ("/anthropic/v1/messages", False, "slow-text"),
    ("/anthropic/v1/messages", True, "slow-silent"),
    ("/anthropic/v1/messages", True, "slow-text"),
]


@pytest.mark.parametrize(
    ("path", "stream", "model"),
    CASES,
    ids=[f"{p.split('/')[-1]}-{'stream' if s else 'whole'}-{m}" for p, s, m in CASES],
)
def test_a_client_that_disconnects_stops_the_model_call(
    live: LiveServer, slow: SlowUpstream, path: str, stream: bool, model: str
) -> None:
    """The client goes away while the model is still answering (before any text, or after
    the first streamed piece): cupola cancels the call, so the upstream sees its request
    dropped at once rather than streaming on to the end for nobody."""
    slow.reset()
    port = int(live.url.rsplit(":", 1)[1])
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "tell me a long story"}],
    }
    if stream:
        body["stream"] = True
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_bytes(port, path, body))
        assert slow.arrived.wait(10), "the request never reached the upstream"
        if stream and model == "slow-text":  # the stream has begun: wait for its first text
            received = b""
            while b"Hel" not in received:
                data = sock.recv(65536)
                assert data, "the server closed the stream"
                received += data
        else:
            time.sleep(0.3)  # the model is thinking
            assert not slow.cancelled.is_set()
    started = time.monotonic()
    assert slow.cancelled.wait(CANCEL_WITHIN), "the model call went on after the client left"
    assert time.monotonic() - started < CANCEL_WITHIN
    assert not slow.finished.is_set()
    # the server is unharmed: the next call on the pooled deployment answers
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    answer = client.chat.completions.create(
        model="pooled", messages=[{"role": "user", "content": "still there?"}]
    )
    assert answer.choices[0].message.content == "echo: still there?"
