"""One access-log line per request, as pure-ASGI middleware (no per-request objects beyond
a closure, so it costs microseconds)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("cupola.access")


class AccessLog:
    """Logs ``METHOD path status ms request-id`` at INFO on ``cupola.access`` when a response
    ends (for a stream: when its last byte is sent, or the client leaves). A request the
    server never answered logs status 0. Wrap it around the middleware that sets
    ``x-request-id``, so the line carries the id the client saw."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        request_id = "-"

        async def send_logged(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            access_log.info(
                "%s %s %d %.1fms %s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )
