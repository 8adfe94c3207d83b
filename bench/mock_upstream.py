"""A zero-latency OpenAI-compatible upstream for benchmarks, run in its own process.

``python -m bench.mock_upstream --port N`` serves ``POST /v1/chat/completions`` (a streamed
``chat.completion.chunk`` reply ending in ``data: [DONE]``, or one ``chat.completion`` when
the request does not ask to stream) and ``GET /stats`` (``{"connections", "open",
"requests"}``: TCP connections accepted so far, open now, requests answered). It is a bare
asyncio protocol on uvloop that answers from pre-encoded bytes, so it costs as little CPU as
possible and never waits: what the benchmark measures is cupola's side of the call. The
stream is framed as OpenAI frames it (chunked transfer encoding, keep-alive).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, cast

import orjson

MODEL = "mock-model"
TEXT = ("echo: ", "Hello, benchmark! ", "Please echo this sentence back.")


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    data: dict[str, Any] = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": choices,
    }
    if usage is not None:
        data["usage"] = usage
    return b"data: " + orjson.dumps(data) + b"\n\n"


_USAGE = {"prompt_tokens": 12, "completion_tokens": len(TEXT), "total_tokens": 12 + len(TEXT)}
_EVENTS = [
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": piece}) for piece in TEXT),
    _chunk({}, "stop"),
    _chunk(None, usage=_USAGE),
    b"data: [DONE]\n\n",
]
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
STREAM = _STREAM_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in _EVENTS) + b"0\r\n\r\n"
"""The whole streamed answer: one chunk of the chunked encoding per server-sent event."""
_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TEXT)},
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
)
JSON = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_COMPLETION),
    _COMPLETION,
)


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.open = 0
        self.requests = 0

    def answer(self) -> bytes:
        body = orjson.dumps(
            {"connections": self.connections, "open": self.open, "requests": self.requests}
        )
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        return head % len(body) + body


class MockProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: requests framed by ``Content-Length`` (what httpx sends)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.stats.connections += 1
        self.stats.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop > 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.respond(head, body)

    def respond(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"get /stats"):
            self.transport.write(self.stats.answer())
            return
        self.stats.requests += 1
        try:
            streamed = orjson.loads(body).get("stream") is True
        except (orjson.JSONDecodeError, AttributeError):
            streamed = False
        self.transport.write(STREAM if streamed else JSON)


async def serve(host: str, port: int) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(stats), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream on http://{host}:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mock_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
        return
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
