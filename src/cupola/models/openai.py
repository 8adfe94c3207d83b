"""The ``openai`` adapter: any OpenAI-compatible Chat Completions server.

OpenAI itself, vLLM, Ollama, llama.cpp server, LM Studio: anything that serves
``POST {base_url}/chat/completions`` with server-sent events. Requests always stream;
an upstream that ignores ``stream`` and answers with one JSON completion is accepted too.
Model-family quirks (``max_completion_tokens``, roles a server does not know) are not
handled here; they belong to a wrapping model (see ``compat.py``).
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
from cupola.models.credentials import CredentialSource
from cupola.models.http import EventStream, HttpModel, upstream_message
from cupola.settings import DeploymentConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    if message.role == "assistant" and message.tool_calls:
        calls = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    return {"role": message.role, "content": message.content}


def _tool(spec: FunctionSpec) -> dict[str, Any]:
    function = {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
    return {"type": "function", "function": _drop_none(function | {"strict": spec.strict})}


def _tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") != "json_schema" or "json_schema" in fmt:
        return fmt
    keys = ("name", "description", "schema", "strict")
    return {"type": "json_schema", "json_schema": _drop_none({k: fmt.get(k) for k in keys})}


def build_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Chat Completions request body (streaming, with usage) for ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
        body["tool_choice"] = _tool_choice(request.tool_choice)
        body["parallel_tool_calls"] = request.parallel_tool_calls
    options = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_output_tokens,
        "max_completion_tokens": request.max_completion_tokens,
        "reasoning_effort": request.reasoning_effort,
        "verbosity": request.verbosity,
        "stop": list(request.stop) or None,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "logprobs": request.logprobs,
        "top_logprobs": request.top_logprobs,
        "logit_bias": request.logit_bias,
        "seed": request.seed,
        "user": request.user,
    }
    body.update(_drop_none(options))
    if request.response_format is not None:
        body["response_format"] = _response_format(request.response_format)
    return body


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _usage(raw: dict[str, Any]) -> Usage:
    prompt = raw.get("prompt_tokens_details")
    completion = raw.get("completion_tokens_details")
    return Usage(
        _int(raw.get("prompt_tokens")),
        _int(raw.get("completion_tokens")),
        _int(prompt.get("cached_tokens") if isinstance(prompt, dict) else 0),
        _int(completion.get("reasoning_tokens") if isinstance(completion, dict) else 0),
    )


class _StreamState:
    """What the chunks of one reply have said so far."""

    def __init__(self, fail: Callable[[str], ProviderError]) -> None:
        self._fail = fail
        self._ids: dict[str, int] = {}
        self.reason: str | None = None
        self.usage = Usage()
        self.model: str | None = None
        self.saw_tool_call = False

    def feed(self, chunk: Any) -> list[ModelEvent]:
        """Events of one chunk (a stream chunk, or a whole non-streamed completion)."""
        if not isinstance(chunk, dict):
            raise self._fail("malformed stream chunk: not a JSON object")
        if chunk.get("error"):
            raise self._fail(f"upstream error: {upstream_message(chunk) or chunk['error']}")
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise self._fail("malformed stream chunk: 'choices' is not a list")
        events: list[ModelEvent] = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                raise self._fail("malformed stream chunk: 'delta' is not a JSON object")
            if isinstance(delta.get("content"), str) and delta["content"]:
                events.append(TextDelta(delta["content"]))
            calls = list(delta.get("tool_calls") or [])
            if isinstance(delta.get("function_call"), dict):
                calls.append({"index": 0, "function": delta["function_call"]})
            for position, call in enumerate(calls):
                events.extend(self._tool_delta(position, call))
            if isinstance(choice.get("finish_reason"), str):
                self.reason = choice["finish_reason"]
        return events

    def _tool_delta(self, position: int, call: Any) -> list[ModelEvent]:
        if not isinstance(call, dict):
            raise self._fail("malformed stream chunk: a tool call is not a JSON object")
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise self._fail("malformed stream chunk: a tool call's function is not an object")
        call_id, name = call.get("id") or None, function.get("name") or None
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):  # a few servers send an object, not JSON text
            arguments = orjson.dumps(arguments).decode()
        index = call.get("index")
        if not isinstance(index, int):  # servers that send whole calls without an index
            index = self._ids.setdefault(call_id, len(self._ids)) if call_id else position
        if call_id is None and name is None and not arguments:
            return []
        self.saw_tool_call = True
        return [ToolCallDelta(index, call_id=call_id, name=name, arguments=arguments)]

    def finish(self) -> Finish:
        reason = _FINISH.get(self.reason or "stop", "stop")
        if reason == "stop" and self.saw_tool_call:  # e.g. Ollama reports "stop" after calls
            reason = "tool_calls"
        return Finish(reason, self.usage, self.model)


class OpenAIChatModel(HttpModel):
    """A deployment served by an OpenAI-compatible Chat Completions upstream."""

    def __init__(
        self,
        config: DeploymentConfig,
        *,
        credential: CredentialSource | None = None,
        key_header: str = "Authorization",
        session: aiohttp.ClientSession | None = None,
        query: dict[str, str] | None = None,
    ):
        """``credential`` replaces ``api_key`` (sent as a bearer token) with one fetched per
        call, sent as a bearer token or in ``key_header``; ``query`` goes in the URL."""
        try:
            url = httpx.URL(config.base_url or DEFAULT_BASE_URL)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"deployment {config.name!r}: base_url is not a URL: {exc}") from None
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        secret = config.api_key.get_secret_value() if config.api_key else ""
        if secret and credential is None:
            headers["Authorization"] = f"Bearer {secret}"
        headers.update(config.headers)
        url = url.copy_with(path=url.path.rstrip("/") + "/chat/completions")
        super().__init__(
            config.name,
            url.copy_merge_params(query) if query else url,
            timeout=config.timeout,
            headers=headers,
            credential=credential,
            key_header=key_header,
            session=session,
        )
        self._secret = secret
        self._model = config.model or config.name

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        return build_body(self._model, request)

    async def _reply(
        self, response: aiohttp.ClientResponse, body: EventStream
    ) -> AsyncIterator[ModelEvent]:
        state = _StreamState(self._fail)
        if response.content_type == "application/json":
            for event in state.feed(self._parse(await response.read())):  # not streamed
                yield event
            yield state.finish()
            return
        async for data in body.events():
            if data.strip() == b"[DONE]":
                yield state.finish()
                return
            for event in state.feed(self._parse(data)):
                yield event
        if state.reason is None:
            raise self._fail(f"the stream from {self._where} ended before the reply finished")
        yield state.finish()
