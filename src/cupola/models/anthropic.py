"""The ``anthropic`` adapter: the Anthropic Messages API (Anthropic, or Claude on Foundry).

``POST {endpoint}/v1/messages`` (``endpoint`` defaults to ``https://api.anthropic.com``; a
Foundry resource's is ``https://RES.services.ai.azure.com/anthropic``), always streaming.
The key goes in ``x-api-key`` (from ``api_key`` or a project ``connection``); with
``auth: entra`` an Entra ID token for ``https://ai.azure.com/.default`` goes in
``Authorization: Bearer``. ``anthropic-version`` is ``api_version`` (default 2023-06-01).

Mapping from a :class:`ModelRequest`: system and developer messages become the top-level
``system``; assistant tool calls become ``tool_use`` blocks and tool messages
``tool_result`` blocks of a user turn (consecutive turns of one role are merged, as the API
wants them to alternate); ``tool_choice`` ``required`` is ``any``; ``max_tokens`` (required by
the API) is ``max_completion_tokens`` or ``max_output_tokens``, else 4096; ``stop`` is
``stop_sequences``. Parameters the Messages API has no equivalent for (penalties, logprobs,
logit_bias, seed, response_format, reasoning_effort, verbosity) are not sent; the compat
wrapper reports what it drops.

Usage: ``input_tokens`` counts the whole prompt (Anthropic's ``input_tokens`` plus cache
reads and cache writes), ``cached_tokens`` the cache reads, as the OpenAI APIs count them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx
import orjson

from cupola.exceptions import ConfigError, ProviderError
from cupola.models.base import (
    ChatMessage,
    Finish,
    FinishReason,
    FunctionSpec,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from cupola.models.credentials import (
    AI_SCOPE,
    ConnectionKeys,
    TokenCredential,
    credential_source,
)
from cupola.models.http import EventStream, HttpModel, upstream_message
from cupola.settings import DeploymentConfig

DEFAULT_ENDPOINT = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_STOP: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
"""The HTTP status Anthropic gives each error type, for ``error`` events mid-stream."""

Block = dict[str, Any]


def _tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the ``input`` object of a ``tool_use`` block."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}  # kept, not lost: the model wrote invalid JSON
    return value if isinstance(value, dict) else {"arguments": value}


def _blocks(message: ChatMessage) -> list[Block]:
    if message.role == "tool":
        result: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if message.content:
            result["content"] = message.content
        return [result]
    blocks: list[Block] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.call_id,
                "name": call.name,
                "input": _tool_input(call.arguments),
            }
        )
    return blocks


def _turn(role: str, blocks: list[Block]) -> dict[str, Any]:
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": role, "content": blocks[0]["text"]}
    return {"role": role, "content": blocks}


def split_messages(messages: tuple[ChatMessage, ...]) -> tuple[str | None, list[dict[str, Any]]]:
    """The ``system`` text and the alternating ``messages`` of a Messages API request."""
    system: list[str] = []
    turns: list[tuple[str, list[Block]]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            if message.content:
                system.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return ("\n\n".join(system) or None), [_turn(role, blocks) for role, blocks in turns]


def _tool(spec: FunctionSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": spec.name}
    if spec.description:
        tool["description"] = spec.description
    tool["input_schema"] = spec.parameters
    return tool


def _tool_choice(choice: ToolChoice, parallel: bool) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        out: dict[str, Any] = {"type": "tool", "name": name}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    else:
        out = {"type": "auto"}
    if not parallel:
        out["disable_parallel_tool_use"] = True
    return out


def build_messages_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Messages API request body (streaming) for ``request``."""
    system, messages = split_messages(request.messages)
    max_tokens = request.max_completion_tokens or request.max_output_tokens or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if system is not None:
        body["system"] = system
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
        body["tool_choice"] = _tool_choice(request.tool_choice, request.parallel_tool_calls)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    body["stream"] = True
    return body


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class _MessageStream:
    """What the events of one streamed message have said so far."""

    def __init__(self, fail: Callable[..., ProviderError]) -> None:
        self._fail = fail
        self._calls: dict[int, int] = {}
        """Content block index -> position among this reply's tool calls."""
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, int] = {}
        self.done = False

    def feed(self, event: Any) -> list[ModelEvent]:
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise self._fail("malformed stream event: not a JSON object with a type")
        kind = event["type"]
        if kind == "message_start":
            message = event.get("message") or {}
            if isinstance(message, dict):
                self.model = message.get("model") if isinstance(message.get("model"), str) else None
                self._add_usage(message.get("usage"))
        elif kind == "content_block_start":
            return self._block_start(event)
        elif kind == "content_block_delta":
            return self._block_delta(event)
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
            self._add_usage(event.get("usage"))
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = event.get("error")
            kind = str(error.get("type", "error")) if isinstance(error, dict) else "error"
            message = upstream_message(event) or "unknown error"
            raise self._fail(f"upstream error ({kind}): {message}", _ERROR_STATUS.get(kind))
        # ping, content_block_stop and event types added later carry nothing to emit
        return []

    def _add_usage(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            if isinstance(raw.get(key), int):
                self.usage[key] = raw[key]

    def _block_start(self, event: dict[str, Any]) -> list[ModelEvent]:
        block = event.get("content_block")
        index = event.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            raise self._fail("malformed content_block_start event")
        if block.get("type") == "text" and block.get("text"):
            return [TextDelta(str(block["text"]))]
        if block.get("type") != "tool_use":
            return []  # thinking and server-tool blocks are not part of the reply
        position = self._calls[index] = len(self._calls)
        arguments = ""
        if block.get("input"):  # a whole input (no deltas follow): keep it
            arguments = orjson.dumps(block["input"]).decode()
        call_id, name = block.get("id"), block.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise self._fail("malformed tool_use block: no id or name")
        return [ToolCallDelta(position, call_id=call_id, name=name, arguments=arguments)]

    def _block_delta(self, event: dict[str, Any]) -> list[ModelEvent]:
        delta = event.get("delta")
        index = event.get("index")
        if not isinstance(delta, dict) or not isinstance(index, int):
            raise self._fail("malformed content_block_delta event")
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str):
                raise self._fail("malformed text_delta: no text")
            return [TextDelta(text)] if text else []
        if delta.get("type") == "input_json_delta":
            if index not in self._calls:
                raise self._fail("input_json_delta for a block that is not a tool_use")
            partial = delta.get("partial_json")
            if not isinstance(partial, str):
                raise self._fail("malformed input_json_delta: no partial_json")
            return [ToolCallDelta(self._calls[index], arguments=partial)] if partial else []
        return []  # thinking_delta, signature_delta, citations_delta

    def finish(self) -> Finish:
        u = self.usage
        cached = u.get("cache_read_input_tokens", 0)
        prompt = u.get("input_tokens", 0) + cached + u.get("cache_creation_input_tokens", 0)
        reason = _STOP.get(self.stop_reason or "end_turn", "stop")
        if reason == "stop" and self._calls:
            reason = "tool_calls"
        return Finish(reason, Usage(prompt, u.get("output_tokens", 0), cached), self.model)


class AnthropicModel(HttpModel):
    """A deployment served by the Anthropic Messages API."""

    def __init__(
        self,
        config: DeploymentConfig,
        *,
        keys: ConnectionKeys | None = None,
        credential: TokenCredential | None = None,
        session: aiohttp.ClientSession | None = None,
    ):
        """``keys`` reads ``connection`` credentials; ``credential`` replaces
        ``DefaultAzureCredential`` for ``auth: entra``."""
        try:
            url = httpx.URL((config.endpoint or DEFAULT_ENDPOINT).rstrip("/"))
        except httpx.InvalidURL as exc:
            raise ConfigError(f"deployment {config.name!r}: endpoint is not a URL: {exc}") from None
        if not url.scheme or not url.host:
            raise ConfigError(f"deployment {config.name!r}: endpoint must be an http(s) URL")
        path = url.path.rstrip("/")
        if not path.endswith("/v1"):
            path += "/v1"
        headers = {
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
            "anthropic-version": config.api_version or DEFAULT_VERSION,
        }
        headers.update(config.headers)
        super().__init__(
            config.name,
            url.copy_with(path=path + "/messages"),
            timeout=config.timeout,
            headers=headers,
            # A custom endpoint (a local proxy) may need no key; Anthropic's own always does.
            credential=credential_source(
                config,
                scope=AI_SCOPE,
                keys=keys,
                credential=credential,
                required=not config.endpoint,
            ),
            key_header="x-api-key",
            session=session,
        )
        self._model = config.model or config.name

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        return build_messages_body(self._model, request)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        """The provider's own count (``POST /v1/messages/count_tokens``)."""
        body = build_messages_body(self._model, request)
        counted = {
            k: body[k] for k in ("model", "messages", "system", "tools", "tool_choice") if k in body
        }
        headers = {**await self._call_headers(), "Accept": "application/json"}
        url = str(self._url.copy_with(path=self._url.path + "/count_tokens"))
        try:
            async with await self._post(url, orjson.dumps(counted), headers) as response:
                if response.status >= 300:
                    raise self._fail(await self._status_error(response), response.status)
                answer = self._parse(await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._fail(f"counting tokens at {self._where} failed: {exc!r}") from exc
        tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, int):
            raise self._fail(f"{self._where} answered count_tokens without input_tokens")
        return tokens

    async def _reply(
        self, response: aiohttp.ClientResponse, body: EventStream
    ) -> AsyncIterator[ModelEvent]:
        state = _MessageStream(self._fail)
        async for data in body.events():
            for out in state.feed(self._parse(data)):
                yield out
            if state.done:
                yield state.finish()
                return
        raise self._fail(f"the stream from {self._where} ended before the reply finished")
