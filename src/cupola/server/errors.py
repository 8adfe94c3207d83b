"""Every error leaves the server in the OpenAI error shape, with the right status: the
exception handlers the app installs (classification: :func:`cupola.exceptions.classify`;
rendering: server/render/errors.py)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cupola.exceptions import CupolaError, ErrorInfo
from cupola.server.render.errors import classified, openai_body, openai_error

_HTTP_CODES = {
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
}


def error_body(message: str, error_type: str, param: str | None, code: str | None) -> bytes:
    """The OpenAI error body (the access middleware answers with it too)."""
    return openai_body(message, error_type, param, code)


def error_response(
    status: int, message: str, error_type: str, param: str | None = None, code: str | None = None
) -> Response:
    """An OpenAI JSON error for an error no exception stands for (a refused URL ...)."""
    return openai_error(ErrorInfo(status, error_type, code, message, param))


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "any"})


def _clean_loc(loc: tuple[Any, ...]) -> list[str]:
    """A validation error's location without pydantic's union-branch tags."""
    out = []
    for part in loc:
        text = str(part)
        if "[" in text or "(" in text or text in _TYPE_TAGS:
            continue
        out.append(text)
    return out


def validation_message(exc: ValidationError) -> tuple[str, str | None]:
    """One line naming where the body is wrong; union alternatives are folded into one."""
    errors: list[Any] = exc.errors()
    locs = [_clean_loc(tuple(e.get("loc", ()))) for e in errors]
    common = locs[0]
    for loc in locs[1:]:
        i = 0
        while i < min(len(common), len(loc)) and common[i] == loc[i]:
            i += 1
        common = common[:i]
    param = ".".join(common) or None
    messages = list(dict.fromkeys(str(e.get("msg", "invalid value")) for e in errors))
    if len(messages) > 1:
        message = "; or ".join(messages)
    else:
        message = messages[0]
    return (f"{param}: {message}" if param else message), param


async def handle_cupola_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CupolaError)
    return openai_error(classified(exc, f"{request.method} {request.url.path}"))


async def handle_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    message, param = validation_message(exc)
    return error_response(400, message, "invalid_request_error", param, "invalid_value")


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_type, code = _HTTP_CODES.get(exc.status_code, ("invalid_request_error", "bad_request"))
    response = error_response(exc.status_code, str(exc.detail), error_type, None, code)
    if exc.status_code == 405:  # every method the path serves, not only the first route's
        from cupola.server.openapi import allowed_methods

        response.headers["allow"] = ", ".join(allowed_methods(request.app.routes, request.scope))
    return response


EXCEPTION_HANDLERS: dict[Any, Any] = {
    CupolaError: handle_cupola_error,
    ValidationError: handle_validation_error,
    HTTPException: handle_http_exception,
}
"""Anything else is answered by :class:`cupola.server.boundary.ErrorBoundary`."""
