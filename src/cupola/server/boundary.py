"""The edge every request crosses inside the app: URLs no store can hold are refused, an
unexpected exception becomes a 500 that keeps the connection open, and a client that went
away is not an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from cupola.server.errors import error_response
from cupola.server.render.errors import classified, openai_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("cupola.server")


class ErrorBoundary:
    """Pure-ASGI middleware between Starlette's outermost error middleware and its
    exception handlers.

    Starlette answers an unhandled exception with a 500 and then raises it again, so the
    server drops the keep-alive connection. Here the 500 is sent and the exception ends,
    so the connection serves the next request. Once a response has started nothing more can
    be said on it, and the exception goes on (the server closes the connection). A client
    that disconnected is logged at DEBUG, not as an error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if "\x00" in scope["path"] or (query and (b"%00" in query or b"\x00" in query)):
            response = error_response(
                400,
                "the URL may not contain the NUL character (%00)",
                "invalid_request_error",
                None,
                "invalid_value",
            )
            await response(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:
            log.debug("client disconnected: %s %s", scope["method"], scope["path"])
        except Exception as exc:  # the app as a whole is the call this guards
            if started:
                raise
            info = classified(exc, f"{scope['method']} {scope['path']}")
            await openai_error(info)(scope, receive, send)
