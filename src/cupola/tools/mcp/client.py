"""MCP client layer: a process-wide pool of warm sessions over the official ``mcp`` SDK.

A server is named by an :class:`McpServerSpec` (streamable HTTP URL + headers, or a local
command spoken to over stdio). :class:`McpPool` keeps one connected session per spec and
sends every ``tools/list`` and ``tools/call`` through it, so a call costs one round trip.
A session whose server went away is replaced; a call that never reached a live server is
retried once on the fresh session. Everything else that goes wrong is an :class:`McpError`
naming the server: unreachable, timed out, crashed, or the protocol error it answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    LOG_LEVEL_META_KEY,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    RequestParamsMeta,
    ResourceLink,
    TextContent,
    TextResourceContents,
    Tool,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from cupola.settings import ToolSettings
from cupola.tools.egress import EgressPolicy
from cupola.tools.mcp._errors import (
    McpError,
    connect_error,
    invalid_answer,
    lost,
    lost_error,
    protocol_error,
    timeout_error,
    undelivered,
)
from cupola.tools.mcp._session import Session
from cupola.tools.mcp.relay import Relay

__all__ = ["McpError", "McpPool", "McpResult", "McpServerSpec", "McpTool"]

_MAX_PAGES = 100
_SETTLE = 1.0
"""How long to wait for a lost session's owner to record why it ended."""
_MAX_IDLE = 4
"""Warm one-call-at-a-time sessions kept per server for relayed calls."""


Progress: TypeAlias = ProgressFnT
"""Receives (progress, total, message) of a call's progress notifications."""


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """Where an MCP server is: a streamable-HTTP ``url`` (with ``headers``), or a local
    ``command`` (with ``args``, ``env``, ``cwd``) spoken to over stdio."""

    label: str = field(compare=False)
    """The ``server_label`` used in messages; not part of the pool key."""
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: str | None = None
    connect_timeout: float | None = field(default=None, compare=False)
    """How long connecting (starting, for a command) may take; None: the pool's."""
    key: str = field(init=False, repr=False, compare=False)
    """Stable pool key: a hash of the URL and headers, or of the command line, env and cwd
    (so secrets in headers or env never appear in it)."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.command is None):
            raise ValueError("an MCP server spec needs exactly one of url or command")
        if self.url is not None:
            material: list[Any] = ["http", self.url, sorted(self.headers.items())]
        else:
            material = ["stdio", self.command, list(self.args), sorted((self.env or {}).items())]
            material.append(self.cwd)
        digest = hashlib.sha256(json.dumps(material).encode()).hexdigest()[:32]
        object.__setattr__(self, "key", f"{material[0]}:{digest}")

    def __hash__(self) -> int:
        return hash(self.key)

    def stdio_parameters(self) -> StdioServerParameters | None:
        if self.command is None:
            return None
        env = dict(self.env) if self.env else None
        return StdioServerParameters(
            command=self.command, args=list(self.args), env=env, cwd=self.cwd
        )


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool as the server lists it."""

    name: str
    description: str | None
    input_schema: dict[str, Any]
    annotations: dict[str, Any] | None
    """MCP tool annotations in their wire names (``readOnlyHint`` ...), or None."""


@dataclass(frozen=True, slots=True)
class McpResult:
    """What a ``tools/call`` returned."""

    text: str
    """The text of the content blocks, one per line (the structured result as JSON when
    there is no text)."""
    structured: Any
    """``structuredContent``, or None."""
    is_error: bool
    """The tool reported a failure (``isError``)."""
    content: list[dict[str, Any]] = field(default_factory=list)
    """The content blocks in their wire shape."""


def _block_text(block: ContentBlock) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource):
        res = block.resource
        if isinstance(res, TextResourceContents):
            return res.text
        return f"[resource {res.uri} ({res.mime_type or 'binary'})]"
    if isinstance(block, ResourceLink):
        return f"[resource link {block.uri}]"
    if isinstance(block, ImageContent):
        return f"[image {block.mime_type}]"
    return f"[audio {block.mime_type}]"


def _result(raw: CallToolResult) -> McpResult:
    text = "\n".join(_block_text(block) for block in raw.content)
    if not raw.content and raw.structured_content is not None:
        text = json.dumps(raw.structured_content, ensure_ascii=False)
    content = [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in raw.content]
    return McpResult(text, raw.structured_content, bool(raw.is_error), content)


def _tool(raw: Tool) -> McpTool:
    annotations = raw.annotations
    return McpTool(
        name=raw.name,
        description=raw.description,
        input_schema=raw.input_schema,
        annotations=(
            annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
            if annotations is not None
            else None
        ),
    )


class McpPool:
    """Warm MCP sessions shared by every response of the process, keyed by spec.

    Sessions belong to the event loop that opened them. ``allow_commands`` decides
    whether stdio servers (local commands) may run; by default they may when
    ``tools.allow_loopback`` is on (development), and not otherwise.
    """

    def __init__(
        self,
        egress: EgressPolicy,
        *,
        allow_commands: bool | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self.egress = egress
        self.allow_commands = (
            egress.settings.allow_loopback if allow_commands is None else allow_commands
        )
        self.connect_timeout = connect_timeout or egress.settings.timeout_seconds
        self._sessions: dict[str, Session] = {}
        self._idle: dict[str, list[Session]] = {}
        """Exclusive sessions not serving a call, kept warm (see :meth:`call_tool`)."""
        self._retired: set[Session] = set()

    @property
    def settings(self) -> ToolSettings:
        return self.egress.settings

    def connected(self, spec: McpServerSpec) -> bool:
        """Whether a live (connected or connecting) session for ``spec`` is pooled."""
        session = self._sessions.get(spec.key)
        return session is not None and not session.dead

    async def list_tools(
        self,
        spec: McpServerSpec,
        timeout: float | None = None,  # noqa: ASYNC109 - the deadline becomes an McpError
    ) -> list[McpTool]:
        """Every tool the server offers (all pages), within ``timeout`` seconds (default
        ``tools.timeout_seconds``)."""
        timeout = self.settings.timeout_seconds if timeout is None else timeout
        self._check(spec)
        try:
            with anyio.fail_after(self._budget(spec, timeout)):
                return await self._list(spec)
        except TimeoutError:
            raise timeout_error(spec.label, timeout, "listing tools") from None

    async def call_tool(
        self,
        spec: McpServerSpec,
        name: str,
        arguments: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 - the deadline becomes an McpError
        progress: Progress | None = None,
        relay: Relay | None = None,
    ) -> McpResult:
        """Call a tool within ``timeout`` seconds (connecting included). A tool that fails
        returns a result with ``is_error``; a server that cannot be used raises
        :class:`McpError` (or ``EgressDenied`` for a URL the egress policy refuses).
        ``progress`` receives the server's progress notifications for this call.

        With a ``relay``, the server's log messages (at or above ``relay.log_level``) and its
        sampling and elicitation requests go to the relay. Such a call runs on a session that
        serves no other call meanwhile (kept warm for the next relayed call), because the
        protocol does not say which call a server's request belongs to."""
        self._check(spec)
        try:
            with anyio.fail_after(self._budget(spec, timeout, exclusive=relay is not None)):
                return await self._call(spec, name, arguments, progress, relay)
        except TimeoutError:
            raise timeout_error(spec.label, timeout, f"running tool '{name}'") from None

    async def aclose(self) -> None:
        """Close every session; stdio servers are terminated."""
        idle = [session for sessions in self._idle.values() for session in sessions]
        sessions = [*self._sessions.values(), *idle, *self._retired]
        self._sessions.clear()
        self._idle.clear()
        self._retired.clear()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(s.aclose() for s in sessions if s.loop is loop))

    # -- internals -------------------------------------------------------------------

    def _budget(self, spec: McpServerSpec, timeout: float, exclusive: bool = False) -> float:
        """``timeout``, plus the spec's own connect time when a session must be started
        first (a server declared with a longer ``startup_timeout_seconds``)."""
        if spec.connect_timeout is None:
            return timeout
        if exclusive:
            warm = bool(self._idle.get(spec.key))
        else:
            session = self._sessions.get(spec.key)
            warm = session is not None and not session.dead and session.client is not None
        return timeout if warm else timeout + spec.connect_timeout

    def _connect_timeout(self, spec: McpServerSpec) -> float:
        return spec.connect_timeout or self.connect_timeout

    def _check(self, spec: McpServerSpec) -> None:
        if spec.url is not None:
            self.egress.check(spec.url, what=f"MCP server '{spec.label}'")
        elif not self.allow_commands:
            raise McpError(
                f"MCP server '{spec.label}' is a local command, and local MCP servers are "
                "disabled on this server",
                code="mcp_disabled",
            )

    def _session(self, spec: McpServerSpec) -> Session:
        session = self._sessions.get(spec.key)
        if session is not None and not session.dead and session.loop is asyncio.get_running_loop():
            return session
        if session is not None:
            self._drop(spec, session)
        session = Session(
            url=spec.url,
            headers=dict(spec.headers),
            stdio=spec.stdio_parameters(),
            connect_timeout=self._connect_timeout(spec),
            transport=self.egress.transport2() if spec.url is not None else None,
        )
        self._sessions[spec.key] = session
        return session

    def _checkout(self, spec: McpServerSpec) -> Session:
        """An exclusive session for one call: a warm idle one, or a new one."""
        loop = asyncio.get_running_loop()
        idle = self._idle.get(spec.key, [])
        while idle:
            session = idle.pop()
            if not session.dead and session.loop is loop:
                return session
            self._drop(spec, session)
        return Session(
            url=spec.url,
            headers=dict(spec.headers),
            stdio=spec.stdio_parameters(),
            connect_timeout=self._connect_timeout(spec),
            transport=self.egress.transport2() if spec.url is not None else None,
            exclusive=True,
        )

    def _checkin(self, spec: McpServerSpec, session: Session) -> None:
        """An exclusive session's call ended: keep it warm, or let it go."""
        session.relay = None
        idle = self._idle.setdefault(spec.key, [])
        if session.dead or len(idle) >= _MAX_IDLE or session.loop is not asyncio.get_running_loop():
            self._drop(spec, session)
        else:
            idle.append(session)

    def _drop(self, spec: McpServerSpec, session: Session) -> None:
        session.mark_dead()
        if self._sessions.get(spec.key) is session:
            del self._sessions[spec.key]
        if session.loop is asyncio.get_running_loop():
            self._retired.add(session)
            session.on_end(self._retired.discard)

    async def _client(
        self, spec: McpServerSpec, attempt: int, exclusive: bool = False
    ) -> tuple[Session, Client] | None:
        """The session's client; None when a pooled session just died (try a fresh one).
        An ``exclusive`` session is the caller's until it hands it back with :meth:`_checkin`."""
        session = self._checkout(spec) if exclusive else self._session(spec)
        was_up = session.client is not None
        try:
            return session, await session.ready()
        except Exception as exc:  # whatever the SDK's transport raised (Session records it)
            self._drop(spec, session)
            if was_up and attempt == 0:
                return None
            raise connect_error(
                spec.label, spec.url is not None, session, exc, self._connect_timeout(spec)
            ) from None

    async def _list(self, spec: McpServerSpec) -> list[McpTool]:
        for attempt in range(2):
            got = await self._client(spec, attempt)
            if got is None:
                continue
            session, client = got
            listed: list[Tool] = []
            cursor: str | None = None
            try:
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    listed += page.tools
                    cursor = page.next_cursor
                    if cursor is None:
                        break
            except MCPError as exc:
                if not lost(session, exc):
                    raise protocol_error(spec.label, exc, "listing tools") from None
                await self._lose(spec, session)
                if attempt == 0:
                    continue
                raise lost_error(
                    spec.label, spec.url is not None, session, "listing tools"
                ) from None
            except Exception as exc:  # the SDK could not read the answer (pydantic, anyio ...)
                raise invalid_answer(spec.label, exc, "listing tools") from None
            return [_tool(t) for t in listed]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self,
        spec: McpServerSpec,
        name: str,
        arguments: dict[str, Any],
        progress: Progress | None = None,
        relay: Relay | None = None,
    ) -> McpResult:
        for attempt in range(2):
            got = await self._client(spec, attempt, exclusive=relay is not None)
            if got is None:
                continue
            session, client = got
            try:
                if relay is not None:
                    session.relay = relay
                    meta = await _log_opt_in(session, client, relay)
                else:
                    meta = None
                raw = await client.call_tool(name, arguments, progress_callback=progress, meta=meta)
            except MCPError as exc:
                what = f"running tool '{name}'"
                if not lost(session, exc):
                    raise protocol_error(spec.label, exc, what) from None
                await self._lose(spec, session)
                if attempt == 0 and undelivered(session):
                    continue
                raise lost_error(spec.label, spec.url is not None, session, what) from None
            except Exception as exc:  # the SDK could not read the answer (pydantic, anyio ...)
                raise invalid_answer(spec.label, exc, f"running tool '{name}'") from None
            finally:
                if relay is not None:
                    self._checkin(spec, session)
            return _result(raw)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _lose(self, spec: McpServerSpec, session: Session) -> None:
        self._drop(spec, session)
        await session.ended(_SETTLE)


async def _log_opt_in(session: Session, client: Client, relay: Relay) -> RequestParamsMeta | None:
    """Ask the server for log messages at the relay's level: per request on 2026-07-28
    connections (``_meta``), with ``logging/setLevel`` on earlier ones."""
    level = relay.log_level
    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return cast(RequestParamsMeta, {LOG_LEVEL_META_KEY: level}) if level is not None else None
    if level is not None and level != session.log_level and client.server_capabilities.logging:
        with warnings.catch_warnings():  # deprecated at 2026-07-28; this is an earlier era
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.session.set_logging_level(level)
        session.log_level = level
    return None
