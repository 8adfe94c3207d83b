"""What every adapter that reaches its model over HTTP shares: one pooled client, a streamed
``POST``, per-call credentials, and one way to turn what goes wrong into a
:class:`ProviderError` (with the upstream's status and ``Retry-After``, and never the secret).

A subclass says where to send (``url``), how to write the body (:meth:`HttpModel._body`) and
how to read a successful reply (:meth:`HttpModel._reply`).
"""

from __future__ import annotations

import abc
import datetime
import email.utils
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from cupola.exceptions import ProviderError
from cupola.models.base import Model, ModelEvent, ModelRequest
from cupola.models.credentials import CredentialSource

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=60)


def retry_after(headers: httpx.Headers) -> float | None:
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


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event, as the lines arrive."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
        # comments (":" keep-alives) and other fields (event:, id:, retry:) carry nothing here
    if lines:
        yield "\n".join(lines)


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
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``headers`` go with every call; ``credential``, when given, is fetched per call
        and sent as ``Authorization: Bearer`` (tokens, and keys when ``key_header`` is
        ``Authorization``) or in ``key_header`` (keys)."""
        self.name = name
        self._url = url
        self._where = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
        """The upstream, for messages: no credentials, no query."""
        self._timeout = timeout
        self._headers = headers
        self._credential = credential
        self._key_header = key_header
        self._secret = ""
        """The credential last sent, kept out of error messages."""
        self._client = client
        self._owns_client = client is None

    @abc.abstractmethod
    def _body(self, request: ModelRequest) -> dict[str, Any]:
        """The request body for ``request``."""

    @abc.abstractmethod
    def _reply(self, response: httpx.Response) -> AsyncIterator[ModelEvent]:
        """The events of a successful (2xx) answer, ending with its ``Finish``."""

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, limits=LIMITS)
        return self._client

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
        try:
            async with self._http().stream(
                "POST", self._url, content=body, headers=headers, timeout=self._timeout
            ) as response:
                if not response.is_success:
                    raise self._fail(
                        await self._status_error(response),
                        response.status_code,
                        retry_after(response.headers),
                    )
                async for event in self._reply(response):
                    yield event
        except httpx.TimeoutException as exc:
            raise self._fail(f"{self._where} did not answer within {self._timeout:g}s") from exc
        except httpx.ConnectError as exc:
            raise self._fail(f"cannot connect to {self._where}: {exc}") from exc
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise self._fail(f"the connection to {self._where} failed: {detail}") from exc

    def _parse(self, data: str | bytes) -> Any:
        """One JSON event (or body) of the reply."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise self._fail(f"malformed stream event from {self._where}: {exc}") from None

    async def _status_error(self, response: httpx.Response) -> str:
        raw = await response.aread()
        try:
            message = upstream_message(orjson.loads(raw))
        except orjson.JSONDecodeError:
            message = None
        if not message:
            message = raw.decode(errors="replace").strip() or response.reason_phrase
        return f"{self._where} returned HTTP {response.status_code}: {message[:500]}"

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
