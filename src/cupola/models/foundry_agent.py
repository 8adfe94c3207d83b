"""The ``foundry_agent`` adapter: a remote Foundry agent as a model.

A deployment ``provider: foundry_agent`` with ``endpoint`` (the project endpoint,
``https://RES.services.ai.azure.com/api/projects/PROJECT``) and ``agent`` (and optionally
``agent_version``) sends each call to that agent through azure-ai-projects:
``AIProjectClient(endpoint, credential).get_openai_client()``, then
``responses.create(input=..., conversation=..., stream=True, extra_body={"agent_reference":
{"name", "version"?, "type": "agent_reference"}})``. A cupola agent, evaluation or red-team run
can so target an agent that lives in Foundry.

Multi-turn: the remote agent keeps its conversation server-side and wants only what is new
each turn, while a :class:`ModelRequest` carries the whole history. So after each reply the
adapter remembers *which remote conversation holds this exact history*: the key is a SHA-256
digest of the history plus the reply (roles, texts, tool calls and results; consecutive
assistant messages merged, as the runtime may split a reply into a message and its calls).
On the next call it looks for the longest remembered prefix of the request's history; when
found, it sends only the messages after that prefix to the same remote conversation. A
remembered prefix is used once (the conversation has moved on), so a history that forks
(an edited turn, a branch from an older response) never lands in a conversation holding
the other branch. When nothing matches (the first turn, a restarted server, another
replica, an evicted entry), the adapter creates a remote conversation and replays the whole
history into it: continuity costs tokens then, never correctness. Nothing is written into
the history itself, so replies carry no markers and nothing needs the store.

Credentials: ``auth: entra`` uses ``DefaultAzureCredential`` (run in a worker thread); a key
(``api_key`` or ``connection``) is presented as a static bearer token, since
``AIProjectClient`` takes only token credentials.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import openai
import orjson
from azure.ai.projects.aio import AIProjectClient
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import AsyncioRequestsTransport

from cupola.exceptions import ConfigError, ProviderError
from cupola.models.base import (
    ChatMessage,
    Finish,
    FinishReason,
    Model,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallAssembler,
    ToolCallDelta,
    Usage,
)
from cupola.models.credentials import (
    AI_SCOPE,
    ConnectionKeys,
    CredentialSource,
    TokenCredential,
    credential_source,
)
from cupola.models.http import retry_after
from cupola.settings import DeploymentConfig

MAX_REMEMBERED = 4096
MAX_TRAILING_EVENTS = 16
"""Events read past the one that ends the reply before the stream is cut off (none follow
it in practice: reading on is how the body's end is reached)."""
"""Histories remembered per deployment (least recently used ones are forgotten first)."""
_FAILED_STATUS = {
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "vector_store_timeout": 504,
}
"""The HTTP status matching a failed response's error code (others count as 400)."""
_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


class _SourceCredential:
    """An ``AsyncTokenCredential`` over a :class:`CredentialSource`: Entra tokens fetched
    in a worker thread, or a key presented as a bearer token."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        secret = await self._source.get()
        expires = secret.expires_on
        if not secret.bearer:  # a key: renew it (re-read a connection) every minute
            expires = min(expires, time.time() + 360)
        return AccessToken(secret.value, int(expires))

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _SourceCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


def _canonical(messages: tuple[ChatMessage, ...]) -> list[ChatMessage]:
    """Messages with consecutive assistant messages merged into one."""
    out: list[ChatMessage] = []
    for m in messages:
        if m.role == "assistant" and out and out[-1].role == "assistant":
            last = out[-1]
            out[-1] = ChatMessage(
                "assistant", last.content + m.content, (*last.tool_calls, *m.tool_calls)
            )
        else:
            out.append(m)
    return out


def _prefix_digests(messages: list[ChatMessage]) -> dict[int, str]:
    """Digest of ``messages[:n]`` for every ``n`` ending with an assistant message."""
    digest = hashlib.sha256()
    out: dict[int, str] = {}
    for n, m in enumerate(messages, start=1):
        calls = [[c.call_id, c.name, c.arguments] for c in m.tool_calls]
        digest.update(orjson.dumps([m.role, m.content, calls, m.tool_call_id]))
        digest.update(b"\n")
        if m.role == "assistant":
            out[n] = digest.hexdigest()
    return out


class ConversationMemory:
    """Which remote conversation holds which history (see the module docstring)."""

    def __init__(self, size: int = MAX_REMEMBERED) -> None:
        self._size = size
        self._map: OrderedDict[str, str] = OrderedDict()

    def take(self, messages: list[ChatMessage]) -> tuple[str | None, int]:
        """The conversation holding the longest remembered prefix of ``messages`` and that
        prefix's length, forgetting it (it is about to move on); ``(None, 0)`` if none."""
        for n, digest in sorted(_prefix_digests(messages).items(), reverse=True):
            conversation = self._map.pop(digest, None)
            if conversation is not None:
                return conversation, n
        return None, 0

    def remember(self, messages: list[ChatMessage], conversation: str) -> None:
        digests = _prefix_digests(messages)
        if not digests or len(messages) not in digests:
            return
        self._map[digests[len(messages)]] = conversation
        self._map.move_to_end(digests[len(messages)])
        while len(self._map) > self._size:
            self._map.popitem(last=False)


def input_items(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as Responses input items."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": m.tool_call_id or "",
                    "output": m.content,
                }
            )
            continue
        if m.content or m.role != "assistant":
            items.append({"type": "message", "role": m.role, "content": m.content})
        for call in m.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
    return items


def _get(obj: Any, key: str) -> Any:
    """A field of an SDK event object (or of a plain dict)."""
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _usage(raw: Any) -> Usage:
    def count(value: Any) -> int:
        return value if isinstance(value, int) else 0

    if raw is None:
        return Usage()
    return Usage(
        count(_get(raw, "input_tokens")),
        count(_get(raw, "output_tokens")),
        count(_get(_get(raw, "input_tokens_details"), "cached_tokens")),
        count(_get(_get(raw, "output_tokens_details"), "reasoning_tokens")),
    )


class _Turn:
    """What the events of one streamed response have said so far."""

    def __init__(self, model: FoundryAgentModel) -> None:
        self._model = model
        self._calls: dict[str, int] = {}
        """Output item id -> position among this reply's tool calls."""
        self.text: list[str] = []
        self.assembler = ToolCallAssembler()
        self.finish: Finish | None = None

    def feed(self, event: Any) -> list[ModelEvent]:
        kind = _get(event, "type")
        if kind == "response.output_text.delta":
            delta = _get(event, "delta")
            if not isinstance(delta, str):
                raise self._model.fail("malformed response.output_text.delta event")
            self.text.append(delta)
            return [TextDelta(delta)] if delta else []
        if kind == "response.output_item.added":
            item = _get(event, "item")
            if _get(item, "type") != "function_call":
                return []
            call_id, name = _get(item, "call_id"), _get(item, "name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise self._model.fail("malformed function_call item: no call_id or name")
            index = len(self._calls)
            self._calls[str(_get(item, "id") or call_id)] = index
            return self._emit(ToolCallDelta(index, call_id, name, _get(item, "arguments") or ""))
        if kind == "response.function_call_arguments.delta":
            position = self._calls.get(str(_get(event, "item_id")))
            delta = _get(event, "delta")
            if position is None or not isinstance(delta, str):
                raise self._model.fail("function_call_arguments.delta for an unknown call")
            return self._emit(ToolCallDelta(position, arguments=delta)) if delta else []
        if kind in ("response.completed", "response.incomplete"):
            self.finish = self._finish(_get(event, "response"), kind)
        elif kind == "response.failed":
            error = _get(_get(event, "response"), "error")
            self._raise(_get(error, "code"), _get(error, "message"))
        elif kind == "error":
            self._raise(_get(event, "code"), _get(event, "message"))
        return []

    def _emit(self, delta: ToolCallDelta) -> list[ModelEvent]:
        self.assembler.add(delta)
        return [delta]

    def _raise(self, code: Any, message: Any) -> None:
        code = code if isinstance(code, str) else "error"
        status = _FAILED_STATUS.get(code, 400)
        raise self._model.fail(f"the agent failed ({code}): {message or 'no message'}", status)

    def _finish(self, response: Any, kind: str) -> Finish:
        reason: FinishReason = "tool_calls" if self._calls else "stop"
        if kind == "response.incomplete":
            why = _get(_get(response, "incomplete_details"), "reason")
            reason = _INCOMPLETE.get(str(why), "length")
        model = _get(response, "model")
        return Finish(reason, _usage(_get(response, "usage")), model if model else None)

    def reply(self) -> ChatMessage:
        return ChatMessage("assistant", "".join(self.text), tuple(self.assembler.calls()))


async def _read_to_end(events: AsyncIterator[Any], turn: _Turn) -> AsyncIterator[ModelEvent]:
    """The turn's events; past the reply's end the stream is read on to the body's end, so
    the connection goes back to the pool (a response closed half-read closes its
    connection)."""
    trailing = 0
    async for event in events:
        if turn.finish is None:
            for out in turn.feed(event):
                yield out
            continue
        trailing += 1
        if trailing > MAX_TRAILING_EVENTS:
            return


class FoundryAgentModel(Model):
    """A deployment served by a remote Foundry agent."""

    def __init__(
        self,
        config: DeploymentConfig,
        *,
        keys: ConnectionKeys | None = None,
        credential: TokenCredential | None = None,
        http_client: Any = None,
    ):
        """``keys`` reads ``connection`` credentials; ``credential`` replaces
        ``DefaultAzureCredential`` for ``auth: entra``; ``http_client`` (an
        ``openai.DefaultAsyncHttpxClient``) replaces the OpenAI client's transport."""
        self.name = config.name
        where = f"deployment {config.name!r} (foundry_agent)"
        if not config.endpoint:
            raise ConfigError(
                f"{where} needs endpoint: "
                "https://<resource>.services.ai.azure.com/api/projects/<project>"
            )
        if not config.agent:
            raise ConfigError(f"{where} needs agent: the remote agent's name")
        self._endpoint = config.endpoint.rstrip("/")
        try:
            url = httpx.URL(self._endpoint)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"{where}: endpoint is not a URL: {exc}") from None
        self._where = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
        reference: dict[str, str] = {"name": config.agent, "type": "agent_reference"}
        if config.agent_version:
            reference["version"] = config.agent_version
        self._reference = reference
        self._timeout = config.timeout
        self._headers = dict(config.headers)
        source = credential_source(config, scope=AI_SCOPE, keys=keys, credential=credential)
        assert source is not None  # required=True raises instead
        self._credential = source
        self._http_client = http_client
        self._project: AIProjectClient | None = None
        self._openai: openai.AsyncOpenAI | None = None
        self.memory = ConversationMemory()

    def fail(
        self, text: str, status: int | None = None, wait: float | None = None
    ) -> ProviderError:
        return ProviderError(
            f"deployment {self.name!r}: {text}", upstream_status=status, retry_after=wait
        )

    def _client(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            # The project client's own pipeline is never used (only its OpenAI client), so
            # it gets the requests transport rather than needing aiohttp.
            self._project = AIProjectClient(
                endpoint=self._endpoint,
                credential=_SourceCredential(self._credential),
                transport=AsyncioRequestsTransport(),
            )
            options: dict[str, Any] = {"max_retries": 0, "timeout": self._timeout}
            if self._headers:
                options["default_headers"] = self._headers
            if self._http_client is not None:
                options["http_client"] = self._http_client
            self._openai = self._project.get_openai_client(**options)
        return self._openai

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        history = _canonical(request.messages)
        conversation, known = self.memory.take(history)
        new = history[known:]
        if not any(m.role in ("user", "tool") for m in new):
            if conversation is not None:
                self.memory.remember(history[:known], conversation)
            raise self.fail("nothing new to send to the agent: the history ends with its reply")
        client = self._client()
        turn = _Turn(self)
        try:
            if conversation is None:
                conversation = (await client.conversations.create()).id
            events = await client.responses.create(
                input=cast(Any, input_items(new)),
                conversation=conversation,
                stream=True,
                extra_body={"agent_reference": self._reference},
            )
            async with events:
                async for out in _read_to_end(events, turn):
                    yield out
        except openai.APIStatusError as exc:
            if known and conversation:  # refused before it ran: keep the conversation
                self.memory.remember(history[:known], conversation)
            wait = retry_after(httpx.Headers(list(exc.response.headers.multi_items())))
            raise self.fail(self._status_text(exc), exc.status_code, wait) from None
        except openai.APITimeoutError:
            raise self.fail(f"{self._where} did not answer within {self._timeout:g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise self.fail(f"the connection to {self._where} failed: {cause}") from None
        except openai.APIError as exc:
            raise self.fail(f"upstream error: {exc.message}") from None
        except ValueError as exc:  # the SSE data was not JSON
            raise self.fail(f"malformed stream event from {self._where}: {exc}") from None
        if turn.finish is None:
            raise self.fail(f"the stream from {self._where} ended before the reply finished")
        self.memory.remember([*history, turn.reply()], conversation)
        yield turn.finish

    def _status_text(self, exc: openai.APIStatusError) -> str:
        body = exc.body
        message = _get(body, "message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message:
            message = exc.message
        return f"{self._where} returned HTTP {exc.status_code}: {message[:500]}"

    async def aclose(self) -> None:
        if self._openai is not None:
            await self._openai.close()
            self._openai = None
        if self._project is not None:
            project, self._project = self._project, None
            await project.close()
