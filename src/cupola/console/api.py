"""Calls into the API app in-process, with the signed-in key, so every page and action of the
console passes the API's own key, role and host checks and renders the same objects the SDKs
get."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_FORWARDED = frozenset({b"host", b"user-agent", b"accept-language", b"x-request-id"})
"""Headers of the browser's request that an API call keeps (``Host`` above all: the API
refuses a non-loopback one while it needs no key, which is what DNS rebinding sends).
``Origin``, ``Sec-Fetch-*`` and cookies are not passed on: the console checks them itself."""


class ApiError(Exception):
    """The API refused a call: its status and its OpenAI-shaped error message."""

    def __init__(self, status: int, message: str, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call is made for: the browser request's scope and the key (None when the server
    needs none)."""

    scope: Scope
    key: str | None


def api_scope(
    caller: Caller, method: str, path: str, query: bytes = b"", body_type: bytes | None = None
) -> Scope:
    """The ASGI scope of an API request made on behalf of ``caller``."""
    headers = [(k, v) for k, v in caller.scope.get("headers", []) if k in _FORWARDED]
    if caller.key is not None:
        headers.append((b"authorization", b"Bearer " + caller.key.encode("latin-1")))
    if body_type is not None:
        headers.append((b"content-type", body_type))
    scope: Scope = {
        "type": "http",
        "asgi": caller.scope.get("asgi", {"version": "3.0"}),
        "http_version": caller.scope.get("http_version", "1.1"),
        "method": method,
        "scheme": caller.scope.get("scheme", "http"),
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": caller.scope.get("client"),
        "server": caller.scope.get("server"),
    }
    if "state" in caller.scope:
        scope["state"] = caller.scope["state"]
    return scope


class Api:
    """The project's API as the console reads it: ``get`` returns the decoded JSON body or
    raises :class:`ApiError` with the API's own status and message."""

    def __init__(self, app: ASGIApp, project: str) -> None:
        self.app = app
        self.project = project
        self.root = f"/api/projects/{quote(project, safe='')}"

    def path(self, *parts: str) -> str:
        """A path under the project, each part escaped."""
        return self.root + "".join("/" + quote(p, safe="") for p in parts)

    async def get(self, caller: Caller, path: str, **query: str | int) -> Any:
        """``GET path?query`` as ``caller``."""
        status, body = await self.call(caller, "GET", path, urlencode(query).encode())
        if status >= 400:
            raise _error(status, body)
        return orjson.loads(body) if body else None

    async def call(
        self, caller: Caller, method: str, path: str, query: bytes = b"", body: bytes = b""
    ) -> tuple[int, bytes]:
        """One buffered request: its status and body."""
        scope = api_scope(caller, method, path, query, b"application/json" if body else None)
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 500
        chunks: list[bytes] = []

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


def _error(status: int, body: bytes) -> ApiError:
    try:
        error = orjson.loads(body)["error"]
        return ApiError(status, str(error.get("message")), error.get("code"))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return ApiError(status, body.decode(errors="replace")[:300] or f"HTTP {status}", None)
