"""The ``openai`` adapter: any OpenAI-compatible Chat Completions server.

OpenAI itself, vLLM, Ollama, llama.cpp server, LM Studio: anything that serves
``POST {base_url}/chat/completions`` with server-sent events. Requests always stream;
an upstream that ignores ``stream`` and answers with one JSON completion is accepted too.
Model-family quirks (``max_completion_tokens``, roles a server does not know) are not
handled here; they belong to a wrapping model (see ``compat.py``).
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson

from cupola.exceptions import ConfigError, ProviderError
from cupola.models.base import (
    ChatMessage,
    Finish,
    FinishReason,
    FunctionSpec,
    Model,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from cupola.settings import DeploymentConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=60)


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


def _upstream_message(payload: Any) -> str | None:
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
            raise self._fail(f"upstream error: {_upstream_message(chunk) or chunk['error']}")
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


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
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


class OpenAIChatModel(Model):
    """A deployment served by an OpenAI-compatible Chat Completions upstream."""

    def __init__(self, config: DeploymentConfig, *, client: httpx.AsyncClient | None = None):
        self.name = config.name
        self._model = config.model or config.name
        try:
            url = httpx.URL(config.base_url or DEFAULT_BASE_URL)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"deployment {config.name!r}: base_url is not a URL: {exc}") from None
        self._where = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
        """The upstream, for messages: no credentials, no query."""
        self._url = url.copy_with(path=url.path.rstrip("/") + "/chat/completions")
        self._timeout = config.timeout
        self._secret = config.api_key.get_secret_value() if config.api_key else ""
        self._headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if self._secret:
            self._headers["Authorization"] = f"Bearer {self._secret}"
        self._headers.update(config.headers)
        self._client = client
        self._owns_client = client is None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, limits=_LIMITS)
        return self._client

    def _fail(
        self, text: str, status: int | None = None, retry_after: float | None = None
    ) -> ProviderError:
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        return ProviderError(
            f"deployment {self.name!r}: {text}", upstream_status=status, retry_after=retry_after
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        body = orjson.dumps(build_body(self._model, request))
        client = self._http()
        try:
            async with client.stream(
                "POST", self._url, content=body, headers=self._headers, timeout=self._timeout
            ) as response:
                if not response.is_success:
                    raise self._fail(
                        await self._status_error(response),
                        response.status_code,
                        retry_after(response.headers),
                    )
                if response.headers.get("content-type", "").startswith("application/json"):
                    state = _StreamState(self._fail)
                    for event in state.feed(self._parse(await response.aread())):
                        yield event
                    yield state.finish()
                    return
                async for event in self._events(response):
                    yield event
        except httpx.TimeoutException as exc:
            raise self._fail(f"{self._where} did not answer within {self._timeout:g}s") from exc
        except httpx.ConnectError as exc:
            raise self._fail(f"cannot connect to {self._where}: {exc}") from exc
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise self._fail(f"the connection to {self._where} failed: {detail}") from exc

    async def _events(self, response: httpx.Response) -> AsyncIterator[ModelEvent]:
        state = _StreamState(self._fail)
        async for data in _sse_data(response):
            if data.strip() == "[DONE]":
                yield state.finish()
                return
            for event in state.feed(self._parse(data)):
                yield event
        if state.reason is None:
            raise self._fail(f"the stream from {self._where} ended before the reply finished")
        yield state.finish()

    def _parse(self, data: str | bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise self._fail(f"malformed stream chunk from {self._where}: {exc}") from None

    async def _status_error(self, response: httpx.Response) -> str:
        raw = await response.aread()
        try:
            message = _upstream_message(orjson.loads(raw))
        except orjson.JSONDecodeError:
            message = None
        if not message:
            message = raw.decode(errors="replace").strip() or response.reason_phrase
        return f"{self._where} returned HTTP {response.status_code}: {message[:500]}"

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
