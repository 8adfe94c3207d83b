"""W3C trace context at the HTTP edge: continue a caller's ``traceparent``, and tell every
run's caller its trace id (the ``x-cupola-trace-id`` header).

:class:`TraceContext` is a pure-ASGI middleware. For each HTTP request it either continues
the caller's trace (a valid ``traceparent``, with its ``tracestate``: the run's span becomes
a child of the caller's span) or picks the trace id the request's run will get. Either way
the id is known before the response starts, so it can go in the response headers even of a
stream, whose run starts after them: :class:`RequestIdGenerator` (the tracer provider's id
generator) hands the picked id to the run's root span.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

TRACE_ID_HEADER = "x-cupola-trace-id"
RUN_PATHS = ("/responses", "/chat/completions", "/messages")
"""A 2xx answer to a POST on a path ending so has started (or queued) a run."""
_PROPAGATOR = TraceContextTextMapPropagator()
_HEADERS = (b"traceparent", b"tracestate")


@dataclass(slots=True)
class _Slot:
    trace_id: int
    used: bool = False


_slot: ContextVar[_Slot | None] = ContextVar("cupola_trace_slot", default=None)


class RequestIdGenerator(RandomIdGenerator):
    """Random ids, except that a root span started while a request is served gets the trace
    id that request was promised (see the module doc)."""

    def generate_trace_id(self) -> int:
        slot = _slot.get()
        if slot is None:
            return super().generate_trace_id()
        slot.used = True
        return slot.trace_id


def extract(headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
    """The context a request's ``traceparent`` (and ``tracestate``) continue, or None when it
    carries no valid one (absent, malformed, or all zeros: a fresh trace is started)."""
    carrier = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in headers
        if name.lower() in _HEADERS
    }
    if "traceparent" not in carrier:
        return None
    found = _PROPAGATOR.extract(carrier)
    return found if get_current_span(found).get_span_context().is_valid else None


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the request being served, when :class:`TraceContext`
    wraps the app (for log lines and response metadata)."""
    slot = _slot.get()
    return f"{slot.trace_id:032x}" if slot is not None else None


class TraceContext:
    """Pure-ASGI middleware: continue ``traceparent`` and send ``x-cupola-trace-id`` on the
    answer of every request that ran (or queued) a run."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = extract(scope.get("headers") or ())
        if parent is not None:
            trace_id = get_current_span(parent).get_span_context().trace_id
        else:
            trace_id = random.getrandbits(128) or 1
        slot = _Slot(trace_id)
        header = (TRACE_ID_HEADER.encode(), f"{trace_id:032x}".encode())
        run_path = scope.get("method") == "POST" and str(scope.get("path", "")).endswith(RUN_PATHS)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                slot.used or (run_path and 200 <= message["status"] < 300)
            ):
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = otel_context.attach(parent) if parent is not None else None
        slot_token = _slot.set(slot)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _slot.reset(slot_token)
            if token is not None:
                otel_context.detach(token)
