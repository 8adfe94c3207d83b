"""Pure-ASGI middleware, in one pass over the headers: request ids, cross-site refusal
(``Origin``, ``Sec-Fetch-Site``, and ``Host`` while no key is needed), CORS for the origins
``server.cors_origins`` lists, and API-key authentication.

The key a request presents is verified here and left in the scope (``cupola.key``) with its
project and role; :mod:`cupola.server.access` decides, per route, whether they suffice.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from cupola.domain import ApiKey
from cupola.server.access_log import access_log_enabled, log_request
from cupola.server.errors import error_body
from cupola.server.logs import reset_request_id, set_request_id
from cupola.settings import is_loopback_host
from cupola.store.keys import digest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyCheck = Callable[[str], Awaitable[ApiKey | None]]

KEY_SCOPE = "cupola.key"
"""Where the verified :class:`ApiKey` of a request is kept in the ASGI scope (absent when
the server needs no keys: local development, full rights)."""

OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
_ANTHROPIC_PATH = re.compile(r"^(/api/projects/[^/]+)?/anthropic/")
_CROSS_SITE = frozenset({b"cross-site", b"same-site"})
_HEADER_LIST = re.compile(rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
_EXPOSE = b"x-request-id, x-should-retry, retry-after"
_ANTHROPIC_TYPES = {401: "authentication_error", 403: "permission_error"}
_MAX_HOSTS = 256


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key sent as ``Authorization: Bearer``, ``api-key`` or ``x-api-key``."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name in (b"api-key", b"x-api-key") and value:
            return value.decode("latin-1").strip()
    return None


def _host_name(host: bytes) -> str:
    """The name in a ``Host`` header, without its port."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class _Seen:
    """The headers the middleware reads, found in one pass."""

    __slots__ = ("asked_headers", "fetch_site", "host", "origin", "preflight", "request_id")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.request_id = self.origin = self.host = self.fetch_site = None
        self.preflight = self.asked_headers = None
        for name, value in headers:
            if name == b"x-request-id":
                self.request_id = value
            elif name == b"origin":
                self.origin = value
            elif name == b"host":
                self.host = value
            elif name == b"sec-fetch-site":
                self.fetch_site = value
            elif name == b"access-control-request-method":
                self.preflight = value
            elif name == b"access-control-request-headers":
                self.asked_headers = value


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    message: str,
    error_type: str,
    code: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An error answered before the app runs, in the OpenAI error shape (the Anthropic one
    under ``/anthropic``, whose clients expect theirs)."""
    if _ANTHROPIC_PATH.search(scope["path"]):
        kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error")
        body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    else:
        body = error_body(message, error_type, None, code)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-should-retry", b"false"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Tags every response with ``x-request-id`` (and every log record made while serving it,
    see :mod:`cupola.server.logs`); refuses cross-site requests (403) and,
    when keys are required, requests without a valid one (401), in the OpenAI error shape.

    A request carrying ``Origin`` is served only when the origin is in ``cors_origins``
    (CORS is off when that is empty): browsers add ``Origin`` to every cross-origin request
    and to every non-GET one, and SDKs send none. ``Sec-Fetch-Site: cross-site`` without an
    allowed ``Origin`` is refused too. ``loopback_hosts_only`` (a keyless server on loopback)
    also refuses a ``Host`` that is not a loopback name, which is what DNS rebinding sends.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        require_key: bool,
        check_key: KeyCheck,
        cache_seconds: float = 5.0,
        cors_origins: Iterable[str] = (),
        loopback_hosts_only: bool = False,
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.require_key = require_key
        self.check_key = check_key
        self.cache_seconds = cache_seconds
        self.cors_origins = frozenset(o.lower().encode("latin-1") for o in cors_origins)
        self.loopback_hosts_only = loopback_hosts_only
        self._verified: dict[str, tuple[float, ApiKey]] = {}
        """Digest of a key -> (expiry, the key with its project and role)."""
        self._hosts: dict[bytes, bool] = {}
        """Host header -> whether it names loopback (parsing an address costs ~20 µs)."""

    def _loopback_host(self, host: bytes) -> bool:
        known = self._hosts.get(host)
        if known is None:
            if len(self._hosts) >= _MAX_HOSTS:
                self._hosts.clear()
            known = self._hosts[host] = is_loopback_host(_host_name(host))
        return known

    async def _verified_key(self, headers: list[tuple[bytes, bytes]]) -> ApiKey | None:
        secret = presented_key(headers)
        if secret is None:
            return None
        hashed = digest(secret)
        cached = self._verified.get(hashed)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        key = await self.check_key(secret)
        if key is None:
            self._verified.pop(hashed, None)
            return None
        self._verified[hashed] = (time.monotonic() + self.cache_seconds, key)
        return key

    def _cross_site(self, scope: Scope, seen: _Seen) -> tuple[str, str] | None:
        """Why a request is refused as cross-site (message, code), or None."""
        if seen.origin is not None:
            if seen.origin.lower() not in self.cors_origins:
                shown = seen.origin.decode("latin-1")[:200]
                return (
                    f"requests from origin {shown!r} are not allowed: this server accepts "
                    "browser requests only from the origins in server.cors_origins",
                    "origin_not_allowed",
                )
        elif seen.fetch_site in _CROSS_SITE:
            return "cross-site browser requests are not allowed", "origin_not_allowed"
        if (
            self.loopback_hosts_only
            and seen.host is not None
            and not self._loopback_host(seen.host)
        ):
            return (
                "this server answers only to a loopback Host (localhost, 127.0.0.1, [::1]) "
                "while it needs no API key",
                "host_not_allowed",
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logged = self.access_log and access_log_enabled()
        started = time.perf_counter() if logged else 0.0
        status = 0
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        seen = _Seen(headers)
        request_id = seen.request_id or (b"req_" + secrets.token_hex(12).encode())
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id)]

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
                status = message["status"]
            await send(message)

        request_text = request_id.decode("latin-1")
        token = set_request_id(request_text)  # every record made meanwhile names it
        try:
            await self._serve(scope, receive, send_with_id, seen, extra)
        finally:
            if logged:
                log_request(scope["method"], scope["path"], status, started, request_text)
            reset_request_id(token)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        seen: _Seen,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        """Refuse, answer a preflight, or pass the request on (``send`` adds ``extra``)."""
        refused = self._cross_site(scope, seen)
        if refused is not None:
            await send_error(scope, send, 403, refused[0], "permission_error", refused[1])
            return
        if seen.origin is not None:  # an allowed origin
            extra += [(b"access-control-allow-origin", seen.origin), (b"vary", b"Origin")]
            if scope["method"] == "OPTIONS" and seen.preflight is not None:
                await self._preflight(send, seen.asked_headers)
                return
            extra.append((b"access-control-expose-headers", _EXPOSE))
        elif self.cors_origins:
            extra.append((b"vary", b"Origin"))  # caches keep CORS and plain answers apart
        if self.require_key and scope["path"] not in OPEN_PATHS:
            key = await self._verified_key(scope["headers"])
            if key is None:
                await send_error(
                    scope,
                    send,
                    401,
                    "a valid API key is required "
                    "(Authorization: Bearer <key>, api-key or x-api-key)",
                    "authentication_error",
                    "invalid_api_key",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            scope[KEY_SCOPE] = key
        await self.app(scope, receive, send)

    @staticmethod
    async def _preflight(send: Send, asked_headers: bytes | None) -> None:
        """Answer a CORS preflight from an allowed origin (no key needed: browsers send
        none on a preflight)."""
        headers = [
            (b"access-control-allow-methods", _ALLOW_METHODS),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        if asked_headers and _HEADER_LIST.match(asked_headers.strip()):
            headers.append((b"access-control-allow-headers", asked_headers.strip()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
