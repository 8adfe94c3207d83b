"""The test MCP server over streamable HTTP: uvicorn on 127.0.0.1, an ephemeral port, in a
background thread, with server-side counters the tests assert on."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from stdio_server import build_server

_HANDSHAKES = ("server/discover", "initialize")
STDIO_SERVER = str(Path(__file__).with_name("stdio_server.py"))
"""The same server as a script, for stdio."""


@dataclass
class ServerStats:
    """What the server saw, across threads (the server runs in its own)."""

    methods: list[str] = field(default_factory=list)
    """JSON-RPC methods of every POST, in order."""
    connections: set[tuple[str, int]] = field(default_factory=set)
    """Distinct client (host, port) pairs: one per TCP connection."""
    headers: list[dict[str, str]] = field(default_factory=list)
    """HTTP headers of every POST."""
    tool_headers: list[dict[str, str]] = field(default_factory=list)
    """Headers the ``whoami`` tool saw through the SDK's request context."""

    @property
    def handshakes(self) -> int:
        """How many sessions clients opened (discover or initialize requests)."""
        return sum(1 for m in self.methods if m in _HANDSHAKES)


class _Recorder:
    """ASGI middleware recording each POST's method, headers and connection."""

    def __init__(self, app: ASGIApp, stats: ServerStats, token: str | None) -> None:
        self.app = app
        self.stats = stats
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if client:
            self.stats.connections.add((client[0], client[1]))
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.stats.headers.append(headers)
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            self.stats.methods.append(str(json.loads(body).get("method")))
        except (ValueError, AttributeError):
            pass
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class HttpMcpServer:
    """The test server on ``url``; ``stop()`` shuts it down. With ``token``, requests
    without ``Authorization: Bearer <token>`` are answered 401."""

    def __init__(self, port: int = 0, token: str | None = None) -> None:
        self.stats = ServerStats()
        mcp = build_server(on_headers=self.stats.tool_headers.append)
        app: Any = _Recorder(mcp.streamable_http_app(), self.stats, token)
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test MCP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True  # do not wait for open SSE streams
        self._thread.join(timeout=10)
