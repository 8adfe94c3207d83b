"""What every adapter that reaches its model over HTTP shares: one pooled client per
deployment, a streamed ``POST``, per-call credentials, and one way to turn what goes wrong
into a :class:`ProviderError` (with the upstream's status and ``Retry-After``, and never the
secret).

The client is aiohttp's (its C HTTP parser costs a fifth of the CPU httpx does per call).
Connections are kept alive and reused: every reply's body is read to its end before the
call's ``Finish`` is passed on (a streamed reply ends with the last chunk of the chunked
encoding, after ``[DONE]`` or ``message_stop``), and a call abandoned half-way closes its
connection rather than leaving it in the pool.

A subclass says where to send (``url``), how to write the body (:meth:`HttpModel._body`) and
how to read a successful reply (:meth:`HttpModel._reply`).
"""

from __future__ import annotations

import abc
import asyncio
import datetime
import email.utils
import functools
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp
import certifi
import httpx
import orjson
import yarl

from cupola.exceptions import ProviderError
from cupola.models.base import Finish, Model, ModelEvent, ModelRequest
from cupola.models.credentials import CredentialSource

MAX_CONNECTIONS = 100
"""Connections one deployment may have open at once; further calls wait for one to free
up (at most the deployment's ``timeout``)."""
KEEPALIVE_SECONDS = 30.0
"""How long an idle connection is kept for the next call."""
MAX_TRAILER = 64 * 1024
"""Bytes read past the end of a reply (after ``[DONE]``, ``message_stop``) to reach the end
of the body, so the connection goes back to the pool; an upstream that sends more is cut off
(its connection is closed, not reused)."""
TRAILER_SECONDS = 1.0
"""How long the rest of a finished reply's body may take to arrive."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Certificate checks against certifi's roots (what httpx and the SDKs trust) and the
    system's (with ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set). Loading the roots takes a
    while: once per process, off the event loop (see :meth:`HttpModel._http`)."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs()
    return context


def new_session(timeout: float, context: ssl.SSLContext) -> aiohttp.ClientSession:
    """A pooled client: keep-alive, at most :data:`MAX_CONNECTIONS` connections, no cookie
    jar (one caller's cookies are never sent with another's call)."""
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS, ssl=context
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )


def env_proxy(url: yarl.URL) -> tuple[yarl.URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``NO_PROXY``, as httpx and the SDKs honour them), looked up once per deployment rather
    than on every call."""
    try:
        return aiohttp.helpers.get_env_proxy_for_url(url)
    except LookupError:
        return None, None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds an upstream asked to wait: ``retry-after-ms``, or ``Retry-After`` in seconds
    or as an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def upstream_message(payload: Any) -> str | None:
    """The message of an error body: ``{"error": {"message"}}``, ``{"error": "..."}``, ..."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail")
        return message if isinstance(message, str) else None
    return None


MAX_TRAILER = 64 * 1024
"""Bytes read past the end of a reply (after ``[DONE]``, ``message_stop``) to reach the end
of the body, so the connection goes back to the pool; an upstream that sends more is cut off
(its connection is closed, not reused)."""
TRAILER_SECONDS = 1.0
"""How long the rest of a finished reply's body may take to arrive."""


class EventStream:
    """The body of a streamed reply, read as server-sent events straight from the bytes.

    :meth:`events` yields the ``data`` of each event as the events arrive (comments,
    ``event:``, ``id:`` and ``retry:`` fields carry nothing here). :meth:`drain` reads what
    is left of the body once the reply has finished, so that aiohttp can put the connection
    back in the pool: a response released before its body's end closes its connection.
    """

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._chunks: AsyncIterator[bytes] | None = None
        self._parser: AsyncGenerator[bytes, None] | None = None

    def _iterator(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = aiter(self._response.content.iter_any())
        return self._chunks

    def events(self) -> AsyncIterator[bytes]:
        """The ``data`` of each event (its ``data:`` lines joined by newlines)."""
        self._parser = self._parse()
        return self._parser

    async def _parse(self) -> AsyncGenerator[bytes, None]:
        async for data in sse_events(self._iterator()):
            yield data

    async def drain(self) -> None:
        """Read the rest of the body: at most :data:`MAX_TRAILER` bytes, for at most
        :data:`TRAILER_SECONDS` (past that the connection is closed rather than reused)."""
        if self._parser is not None:
            await self._parser.aclose()
        if self._response.content.at_eof():
            return  # read whole already
        seen = 0
        try:
            async with asyncio.timeout(TRAILER_SECONDS):
                async for chunk in self._iterator():
                    seen += len(chunk)
                    if seen > MAX_TRAILER:
                        return
        except TimeoutError:
            return


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event in a body arriving as ``chunks`` (split
    anywhere), as soon as the blank line that ends it arrives; LF, CRLF or CR line ends."""
    partial = b""
    """The start of an event whose blank line has not arrived yet."""
    async for chunk in chunks:
        if partial:
            chunk = partial + chunk
        if b"\r" in chunk:  # CRLF or CR line ends (rare): normalised to LF
            if chunk.endswith(b"\r"):  # maybe half of a CRLF: wait for the next byte
                partial = chunk
                continue
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = chunk.split(b"\n\n")
        partial = blocks.pop()
        for block in blocks:
            data = _data(block)
            if data is not None:
                yield data
    # the body's end: what is left (held back for a CR, or without its blank line) is whole
    for block in partial.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n"):
        data = _data(block)
        if data is not None:
            yield data


def _data(block: bytes) -> bytes | None:
    """The ``data`` of one event block (lines split by LF), or None when it has none."""
    if block.startswith(b"data:") and b"\n" not in block:  # the usual event: one data line
        value = block[5:]
        return value[1:] if value.startswith(b" ") else value
    lines = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines) if lines else None


class HttpModel(Model):
    """A deployment whose model answers one streamed HTTP ``POST`` per call."""

    def __init__(
        self,
        name: str,
        url: httpx.URL,
        *,
        timeout: float,
        headers: dict[str, str],
        credential: CredentialSource | None = None,
        key_header: str = "api-key",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``headers`` go with every call; ``credential``, when given, is fetched per call
        and sent as ``Authorization: Bearer`` (tokens, and keys when ``key_header`` is
        ``Authorization``) or in ``key_header`` (keys). ``session`` replaces the model's own
        pooled client (it is then not closed by :meth:`aclose`)."""
        self.name = name
        self._url = url
        self._target = yarl.URL(str(url), encoded=True)
        """``url`` as aiohttp takes it, parsed once."""
        self._where = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
        """The upstream, for messages: no credentials, no query."""
        self._timeout = timeout
        self._headers = headers
        self._credential = credential
        self._key_header = key_header
        self._secret = ""
        """The credential last sent, kept out of error messages."""
        self._session = session
        self._owns_session = session is None
        self._proxy: tuple[yarl.URL | None, aiohttp.BasicAuth | None] | None = None

    @abc.abstractmethod
    def _body(self, request: ModelRequest) -> dict[str, Any]:
        """The request body for ``request``."""

    @abc.abstractmethod
    def _reply(
        self, response: aiohttp.ClientResponse, body: EventStream
    ) -> AsyncIterator[ModelEvent]:
        """The events of a successful (2xx) answer, ending with its ``Finish``: read from
        ``body``'s events, or the whole of ``response`` for a reply that is not streamed."""

    async def _http(self) -> aiohttp.ClientSession:
        """The deployment's pooled client, created on first use (in the serving loop)."""
        session = self._session
        if session is None or (self._owns_session and session.closed):
            context = await asyncio.to_thread(tls_context)
            if self._session is None or self._session.closed:  # not made meanwhile
                self._session = new_session(self._timeout, context)
                self._owns_session = True
            session = self._session
        return session

    async def _post(self, url: yarl.URL | str, body: bytes, headers: dict[str, str]) -> Any:
        """``POST`` on the pooled client, through the environment's proxy when it names one
        (an ``async with`` context manager around the ``aiohttp.ClientResponse``)."""
        session = await self._http()
        if self._proxy is None:
            self._proxy = env_proxy(self._target)
        proxy, proxy_auth = self._proxy
        return session.post(url, data=body, headers=headers, proxy=proxy, proxy_auth=proxy_auth)

    def _fail(
        self, text: str, status: int | None = None, retry_after: float | None = None
    ) -> ProviderError:
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        return ProviderError(
            f"deployment {self.name!r}: {text}", upstream_status=status, retry_after=retry_after
        )

    async def _call_headers(self) -> dict[str, str]:
        """The headers of one call, with the credential as it is now."""
        if self._credential is None:
            return self._headers
        secret = await self._credential.get()
        self._secret = secret.value
        if secret.bearer or self._key_header.lower() == "authorization":
            return {**self._headers, "Authorization": f"Bearer {secret.value}"}
        return {**self._headers, self._key_header: secret.value}

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        body = orjson.dumps(self._body(request))
        headers = await self._call_headers()
        finish: Finish | None = None
        try:
            async with await self._post(self._target, body, headers) as response:
                if response.status >= 300:
                    raise self._fail(
                        await self._status_error(response),
                        response.status,
                        retry_after(response.headers),
                    )
                events = EventStream(response)
                async for event in self._reply(response, events):
                    if isinstance(event, Finish):
                        finish = event
                    else:
                        yield event
                # The reply is whole: read the body to its end (the last chunk of the
                # chunked encoding follows ``[DONE]``) so the connection is reused.
                await events.drain()
        except aiohttp.ClientError as exc:
            raise self._connection_error(exc) from exc
        except TimeoutError as exc:  # aiohttp's connect and read timeouts
            raise self._fail(f"{self._where} did not answer within {self._timeout:g}s") from exc
        if finish is not None:  # after the connection is back in the pool
            yield finish

    def _connection_error(self, exc: aiohttp.ClientError) -> ProviderError:
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return self._fail(f"{self._where} did not answer within {self._timeout:g}s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self._fail(f"cannot connect to {self._where}: {exc.os_error or exc}")
        if isinstance(exc, aiohttp.ClientPayloadError):
            return self._fail(f"the connection to {self._where} broke off mid-reply: {exc}")
        detail = str(exc) or type(exc).__name__
        return self._fail(f"the connection to {self._where} failed: {detail}")

    def _parse(self, data: str | bytes) -> Any:
        """One JSON event (or body) of the reply."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise self._fail(f"malformed stream event from {self._where}: {exc}") from None

    async def _status_error(self, response: aiohttp.ClientResponse) -> str:
        raw = await response.read()
        try:
            message = upstream_message(orjson.loads(raw))
        except orjson.JSONDecodeError:
            message = None
        if not message:
            message = raw.decode(errors="replace").strip() or (response.reason or "")
        return f"{self._where} returned HTTP {response.status}: {message[:500]}"

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None
