"""The CLI's HTTP client: a small synchronous wrapper over httpx for one project.

Every call goes to ``{endpoint}/api/projects/{project}`` with ``api-version=v1`` and, when a
key is configured, ``Authorization: Bearer``. Errors come back as :class:`CupolaError`
subclasses carrying the server's one-line message; :func:`one_line_errors` turns them into
click errors so a command never ends in a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ParamSpec, TypeVar

import click
import httpx

from cupola.exceptions import (
    AuthenticationError,
    Conflict,
    CupolaError,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    UserError,
)
from cupola.settings import Settings, load_settings

API_VERSION = "v1"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
STREAM_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""Streams wait long between events: a local model on a small machine can be slow."""

_BY_STATUS: dict[int, type[CupolaError]] = {
    400: UserError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: UserError,
    502: ProviderError,
    503: ProviderError,
    504: ProviderError,
}

P = ParamSpec("P")
R = TypeVar("R")


class Unreachable(CupolaError):
    """The server could not be reached at all."""

    error_type = "connection_error"


class CliError(click.ClickException):
    """A one-line error, printed as main() prints a CupolaError: ``error: <message>``."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: a CupolaError becomes a one-line click error (exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CupolaError as exc:
            raise CliError(" ".join(exc.message.split()) or type(exc).__name__) from None

    return wrapper


def error_from_response(response: httpx.Response) -> CupolaError:
    """The CupolaError for an HTTP error, with the OpenAI-shaped error's message."""
    message = ""
    param = code = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or "")
        param = error.get("param")
        code = error.get("code")
    if not message:
        text = " ".join(response.text.split())[:200]
        message = f"HTTP {response.status_code}" + (f": {text}" if text else "")
    message = " ".join(message.splitlines()) or message
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = UserError if 400 <= response.status_code < 500 else CupolaError
    return kind(message, param=param, code=code)


def _sse_payload(data: list[str]) -> dict[str, Any] | None:
    raw = "\n".join(data)
    if not raw.strip() or raw.strip() == "[DONE]":
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        raise CupolaError(f"the server sent an event that is not JSON: {raw[:80]!r}") from None
    return payload if isinstance(payload, dict) else None


def iter_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as ``(event type, data)`` pairs; ``[DONE]`` and comments are skipped."""
    event = ""
    data: list[str] = []
    for line in lines:
        if not line:
            payload = _sse_payload(data)
            if payload is not None:
                yield event or str(payload.get("type", "")), payload
            event, data = "", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    payload = _sse_payload(data)
    if payload is not None:
        yield event or str(payload.get("type", "")), payload


class CupolaClient:
    """Synchronous calls to one project of a cupola server (or a Foundry project)."""

    def __init__(self, endpoint: str, project: str, api_key: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project = project
        self.base_url = f"{self.endpoint}/api/projects/{project}"
        headers = {"user-agent": "cupola-cli"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            params={"api-version": API_VERSION},
            timeout=TIMEOUT,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> CupolaClient:
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return cls(settings.cli_endpoint, settings.project, key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CupolaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _unreachable(self, exc: httpx.HTTPError) -> Unreachable:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return Unreachable(
                f"cannot reach cupola at {self.endpoint} (is `cupola serve` running?)"
            )
        if isinstance(exc, httpx.TimeoutException):
            return Unreachable(f"cupola at {self.endpoint} did not answer in time")
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return Unreachable(f"lost the connection to cupola at {self.endpoint}: {detail}")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body (None for 204) or raise a
        CupolaError."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            raise CupolaError(
                f"{method} {path}: the server's answer is not JSON (is {self.endpoint} cupola?)"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list (``data``/``has_more``/``last_id``)."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = {"limit": 100, **params}
            if after:
                query["after"] = after
            page = self.get(path, **query)
            data = page.get("data") or []
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            after = page.get("last_id") or data[-1].get("id")

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """POST with ``stream: true``; yield the server-sent events as they arrive."""
        try:
            with self._http.stream(
                "POST", path, json={**body, "stream": True}, timeout=STREAM_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                yield from iter_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None


def settings_for(config: Path | None, endpoint: str | None = None) -> Settings:
    """Settings from cupola.yaml and the environment, with ``--endpoint`` applied."""
    settings = load_settings(config)
    if endpoint:
        settings.endpoint = endpoint
    return settings


def connection_options(fn: Callable[P, R]) -> Callable[P, R]:
    """``--config`` and ``--endpoint``, for commands that talk to a server."""
    fn = click.option(
        "--endpoint",
        help="Server URL (default: $CUPOLA_ENDPOINT, else the server address in cupola.yaml).",
    )(fn)
    return click.option("--config", type=click.Path(path_type=Path), help="cupola.yaml to use.")(fn)


def client_for(config: Path | None, endpoint: str | None) -> CupolaClient:
    """The client the ``--config``/``--endpoint`` options of a command describe."""
    return CupolaClient.from_settings(settings_for(config, endpoint))
