"""Pure-ASGI middleware: request ids and API-key authentication, in one pass."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from cupola.domain import ApiKey
from cupola.server.errors import error_body
from cupola.store.keys import digest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyCheck = Callable[[str], Awaitable[ApiKey | None]]

OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
_ANTHROPIC_PATH = re.compile(r"^(/api/projects/[^/]+)?/anthropic/")


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key sent as ``Authorization: Bearer``, ``api-key`` or ``x-api-key``."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name in (b"api-key", b"x-api-key") and value:
            return value.decode("latin-1").strip()
    return None


class RequestContext:
    """Tags every response with ``x-request-id`` and, when keys are required, refuses
    requests without a valid one (401 in the OpenAI error shape)."""

    def __init__(
        self, app: ASGIApp, *, require_key: bool, check_key: KeyCheck, cache_seconds: float = 5.0
    ) -> None:
        self.app = app
        self.require_key = require_key
        self.check_key = check_key
        self.cache_seconds = cache_seconds
        self._verified: dict[str, float] = {}

    async def _authorised(self, headers: list[tuple[bytes, bytes]]) -> bool:
        key = presented_key(headers)
        if key is None:
            return False
        hashed = digest(key)
        expiry = self._verified.get(hashed)
        if expiry is not None and expiry > time.monotonic():
            return True
        if await self.check_key(key) is None:
            self._verified.pop(hashed, None)
            return False
        self._verified[hashed] = time.monotonic() + self.cache_seconds
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = next((v for k, v in headers if k == b"x-request-id"), b"") or (
            b"req_" + secrets.token_hex(12).encode()
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        if (
            self.require_key
            and scope["path"] not in OPEN_PATHS
            and not await self._authorised(headers)
        ):
            message = (
                "a valid API key is required (Authorization: Bearer <key>, api-key or x-api-key)"
            )
            if _ANTHROPIC_PATH.search(scope["path"]):  # Anthropic clients expect their shape
                body = orjson.dumps(
                    {"type": "error", "error": {"type": "authentication_error", "message": message}}
                )
            else:
                body = error_body(message, "authentication_error", None, "invalid_api_key")
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_id)
