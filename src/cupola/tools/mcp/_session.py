"""One warm MCP session, owned by a long-lived background task.

The SDK's ``Client`` is an async context manager whose transport and dispatcher run in
anyio task groups; anyio requires a task group to be exited by the task that entered it.
So each session gets an owner task that enters the ``Client``, publishes it, and waits
to be told to stop; callers in any task talk to it through the published ``Client``
(JSON-RPC requests are multiplexed, so many calls may share one session). The owner also
notices when the connection ends (the server exits, the transport fails) and marks the
session dead, so the pool replaces it before the next call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, TextIO

import anyio
import httpx2
from mcp import Client
from mcp.client import Transport
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import MCP_SESSION_ID, streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    Implementation,
    LoggingMessageNotificationParams,
)

import cupola
from cupola.tools.mcp.relay import Relay

logger = logging.getLogger("cupola.tools.mcp")

CLIENT_INFO = Implementation(name="cupola", version=cupola.__version__)
_SSE_READ_TIMEOUT = 300.0
_STOP_GRACE = 10.0
"""How long a stopping session may take (stdio shutdown escalates within ~6.5 s)."""


class _WatchedReader:
    """The transport's read stream, reporting when it ends (the server went away)."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise
        return item

    def __aiter__(self) -> _WatchedReader:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@asynccontextmanager
async def _watched(transport: Transport, on_end: Callable[[], None]) -> AsyncIterator[Any]:
    async with transport as (read_stream, write_stream):
        yield _WatchedReader(read_stream, on_end), write_stream


_devnull: TextIO | None = None


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours when it is a real file, else nowhere."""
    global _devnull
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        if _devnull is None:
            _devnull = open(os.devnull, "w")  # one per process, never closed
        return _devnull
    return sys.stderr


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]``."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    """A one-line account of why a connection failed, most telling cause first."""
    found = leaves(exc)
    for kind in (httpx2.HTTPError, OSError, MCPError):
        for leaf in found:
            if isinstance(leaf, kind):
                text = str(leaf) or type(leaf).__name__
                return text if isinstance(leaf, MCPError) else f"{type(leaf).__name__}: {text}"
    leaf = found[0]
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


class Session:
    """A connected (or connecting) ``Client`` for one server spec."""

    def __init__(
        self,
        *,
        url: str | None,
        headers: dict[str, str],
        stdio: StdioServerParameters | None,
        connect_timeout: float,
        exclusive: bool = False,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._http_transport = transport
        """Where HTTP connections are opened (the egress policy's pinned transport)."""
        self.exclusive = exclusive
        """Serves one call at a time, for a caller who answers the server's own requests
        (sampling, elicitation) and receives its log messages through :attr:`relay`."""
        self.relay: Relay | None = None
        """Who the server's requests and log messages go to during the current call."""
        self.log_level: str | None = None
        """The level last set with ``logging/setLevel`` (handshake-era servers)."""
        self.client: Client | None = None
        self.dead = False
        """Set once the connection ended or failed; the pool then opens a new session."""
        self.error: BaseException | None = None
        """Why the session ended, when it ended by failing."""
        self.http_status: int | None = None
        """The last HTTP error status the server answered with while connecting (streamable
        HTTP only)."""
        self.expired = False
        """The server answered 404 to this session's id: it forgot the session."""
        self.loop = asyncio.get_running_loop()
        self._headers = headers
        self._stdio = stdio
        self._connect_timeout = connect_timeout
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        # An empty context: the session outlives the request that happened to open it.
        self._task = self.loop.create_task(
            self._own(), name="mcp-session", context=contextvars.Context()
        )

    async def ready(self) -> Client:
        """Wait until connected; the ``Client``, or raise what made connecting fail."""
        if not self._ready.is_set():
            await self._ready.wait()
        client = self.client
        if client is None or self.dead:
            raise self.error or MCPError(-32000, "Connection closed")
        return client

    async def ended(self, within: float) -> None:
        """Wait (at most ``within`` seconds) for the owner task to finish and record why."""
        await asyncio.wait({self._task}, timeout=within)

    def on_end(self, callback: Callable[[Session], None]) -> None:
        """Call ``callback(self)`` once the owner task has finished."""
        self._task.add_done_callback(lambda _: callback(self))

    def mark_dead(self) -> None:
        """The connection is gone: stop accepting calls and let the owner task wind down."""
        self.dead = True
        self._stop.set()

    async def aclose(self) -> None:
        """Close the session (terminating a stdio server) and wait for the owner to finish."""
        self.mark_dead()
        if self._task.done():
            return
        done, _ = await asyncio.wait({self._task}, timeout=_STOP_GRACE)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _log(self, params: LoggingMessageNotificationParams) -> None:
        if self.relay is not None:
            await self.relay.log(params)
        else:
            logger.debug("MCP server log (%s): %s", params.level, params.data)

    async def _sample(
        self, context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult | CreateMessageResultWithTools | ErrorData:
        if self.relay is None:
            return ErrorData(code=INVALID_REQUEST, message="no tool call is waiting for sampling")
        return await self.relay.sample(params)

    async def _elicit(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        if self.relay is None:
            return ErrorData(code=INVALID_REQUEST, message="no tool call is waiting for input")
        return await self.relay.elicit(params)

    async def _on_response(self, response: httpx2.Response) -> None:
        if response.status_code < 400:
            return
        self.http_status = response.status_code
        if response.status_code == 404 and MCP_SESSION_ID in response.request.headers:
            # The server no longer knows this session (it restarted): a new one is needed,
            # and the request was not run.
            self.expired = True
            self.mark_dead()

    async def _transport(self, stack: AsyncExitStack) -> Transport:
        if self._stdio is not None:
            return stdio_client(self._stdio, errlog=_errlog())
        assert self.url is not None
        http = httpx2.AsyncClient(
            headers=self._headers,
            timeout=httpx2.Timeout(self._connect_timeout, read=_SSE_READ_TIMEOUT),
            event_hooks={"response": [self._on_response]},
            transport=self._http_transport,
            trust_env=self._http_transport is None,
        )
        await stack.enter_async_context(http)
        return streamable_http_client(self.url, http_client=http)

    async def _own(self) -> None:
        try:
            # The outermost scope of this task, so its deadline may bound the connect and
            # then be lifted without breaking the nesting of the SDK's task groups.
            with anyio.CancelScope() as scope:
                scope.deadline = anyio.current_time() + self._connect_timeout
                async with AsyncExitStack() as stack:
                    transport = _watched(await self._transport(stack), self.mark_dead)
                    # A relaying session answers the server's own requests, which need the
                    # handshake era's back-channel (2026-07-28 connections have none).
                    relaying: dict[str, Any] = (
                        {
                            "sampling_callback": self._sample,
                            "elicitation_callback": self._elicit,
                            "mode": "legacy",
                        }
                        if self.exclusive
                        else {}
                    )
                    client = Client(
                        transport, client_info=CLIENT_INFO, logging_callback=self._log, **relaying
                    )
                    await stack.enter_async_context(client)
                    scope.deadline = math.inf
                    self.http_status = None  # e.g. a legacy server's 404 to the discover probe
                    self.client = client
                    self._ready.set()
                    await self._stop.wait()
            if scope.cancelled_caught and self.client is None:
                self.error = TimeoutError(f"no answer within {self._connect_timeout:g} s")
        except Exception as exc:  # the SDK's transports and client raise anything (httpx,
            # anyio, OSError, exception groups): recorded, and reported to every caller
            self.error = exc
            logger.debug("MCP session ended: %s", describe(exc))
        finally:
            self.dead = True
            self._ready.set()
