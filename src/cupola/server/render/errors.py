"""One renderer per protocol for a classified error (:class:`~cupola.exceptions.ErrorInfo`).

- OpenAI JSON (every ``/v1`` route): ``{"error": {message, type, param, code}}``;
- Chat Completions, once the stream has begun: the same object as a ``data:`` frame;
- Anthropic JSON: ``{"type": "error", "error": {type, message}}``, and as an ``error`` event.

(A Responses run that fails mid-stream ends with ``response.failed``, its body's ``error``
written by the runtime: :func:`cupola.runtime.response.error_object`.)

:func:`classified` is what a caller holding an exception uses: it classifies it and logs it
once (an unexpected exception with its traceback).
"""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

from cupola.exceptions import ErrorInfo, classify

log = logging.getLogger("cupola.server")

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def classified(exc: BaseException, what: str) -> ErrorInfo:
    """``exc`` classified, and logged once: an unexpected exception with its traceback, a
    server-side cupola error (5xx, not a provider's) as one line. ``what`` says where."""
    info = classify(exc)
    if not info.expected:
        log.error("%s: unhandled error", what, exc_info=exc)
    elif info.status >= 500 and info.type != "model_error":
        log.error("%s: %s: %s", what, type(exc).__name__, info.message)
    return info


def _retry_headers(status: int) -> dict[str, str] | None:
    """A 4xx other than 429 will fail again as sent: the SDKs should not retry it."""
    return {"x-should-retry": "false"} if 400 <= status < 500 and status != 429 else None


def openai_body(message: str, error_type: str, param: str | None, code: str | None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )


def openai_error(info: ErrorInfo) -> Response:
    """The OpenAI JSON error response (``code`` defaults to the type)."""
    return Response(
        openai_body(info.message, info.type, info.param, info.code or info.type),
        status_code=info.status,
        media_type="application/json",
        headers=_retry_headers(info.status),
    )


def chat_stream_error(info: ErrorInfo) -> bytes:
    """An error after a Chat Completions stream began, as the openai SDK reads it (and
    raises)."""
    error = {
        "message": info.message,
        "type": info.type,
        "param": info.param,
        "code": info.code or info.type,
    }
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


def anthropic_object(status: int, message: str) -> dict[str, object]:
    kind = ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error(info: ErrorInfo) -> Response:
    """The Anthropic JSON error response."""
    return Response(
        orjson.dumps(anthropic_object(info.status, info.message)),
        status_code=info.status,
        media_type="application/json",
        headers=_retry_headers(info.status),
    )


def anthropic_stream_error(info: ErrorInfo) -> bytes:
    """An ``error`` event, once a Messages stream has begun."""
    data = {"type": "error", "error": anthropic_object(info.status, info.message)["error"]}
    return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"
