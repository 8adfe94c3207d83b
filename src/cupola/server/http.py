"""Small helpers every route uses: JSON in and out, query parameters, list envelopes."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cupola.domain.limits import check_no_nul
from cupola.exceptions import PayloadTooLarge, UnsupportedMediaType, UserError
from cupola.server.errors import validation_message

M = TypeVar("M", bound=BaseModel)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _check_json_media_type(content_type: str | None) -> None:
    """Refuse (415) a body not declared ``application/json`` (or ``application/*+json``):
    browsers send ``text/plain``, form and type-less bodies cross-site without asking, so a
    JSON endpoint must never read them."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    shown = f"'{media}'" if media else "no Content-Type"
    raise UnsupportedMediaType(
        f"the request body must be sent as Content-Type: application/json (got {shown})",
        code="unsupported_media_type",
    )


def _length_and_type(request: Request) -> tuple[str | None, str | None]:
    """The Content-Length and Content-Type headers, read from the raw scope in one pass
    (the first of each, as Starlette's ``Headers.get`` gives)."""
    length: bytes | None = None
    kind: bytes | None = None
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            if length is None:
                length = value
        elif name == b"content-type" and kind is None:
            kind = value
    return (
        None if length is None else length.decode("latin-1"),
        None if kind is None else kind.decode("latin-1"),
    )


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing bodies over the configured size with 413 and
    bodies not sent as ``application/json`` with 415."""
    limit: int = request.app.state.max_body_bytes
    declared, content_type = _length_and_type(request)
    checked = False
    if declared is not None and declared.isdigit():
        size = int(declared)
        if size > 0:
            _check_json_media_type(content_type)  # before reading it
            checked = True
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", code="payload_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", code="payload_too_large")
        chunks.append(chunk)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not raw or raw.isspace():
        return {}
    if not checked:
        _check_json_media_type(content_type)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if b"\\u0000" in raw:  # JSON can only carry NUL escaped; no store can hold it
        check_no_nul(data)
    return data


async def parse_body(request: Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise UserError("the request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = validation_message(exc)
        raise UserError(message, param=param, code="invalid_value") from None


def query_int(request: Request, name: str, default: int, low: int = 1, high: int = 100) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name} must be an integer", param=name) from None
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}", param=name)
    return value


def query_order(request: Request, default: str = "desc") -> str:
    order = request.query_params.get("order") or default
    if order not in ("asc", "desc"):
        raise UserError("order must be 'asc' or 'desc'", param="order")
    return order


def list_envelope(
    data: list[dict[str, Any]], has_more: bool, *, null_last_when_done: bool = False
) -> dict[str, Any]:
    """The OpenAI list shape. ``null_last_when_done`` suits clients that page until last_id
    is null (azure-ai-projects) rather than reading has_more."""
    last = data[-1]["id"] if data else None
    if null_last_when_done and not has_more:
        last = None
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": last,
        "has_more": has_more,
    }
