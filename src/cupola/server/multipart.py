"""``multipart/form-data`` bodies (file uploads): reading them within a size limit, their
parts, and a safe file name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.requests import Request

from cupola.exceptions import PayloadTooLarge, UserError

_MULTIPART_OVERHEAD = 64 * 1024
"""What a form adds around the file (boundaries, part headers, other fields)."""


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    filename: str | None
    content: bytes


_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_FORM_ESCAPE = re.compile(r"%(2[2]|[01][0-9A-Fa-f])|\\(.)")


def _header_params(value: str) -> dict[str, str]:
    """The parameters of a header such as ``form-data; name="file"; filename="a.txt"``."""
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(value):
        key = key.lower()
        if raw.startswith('"'):
            raw = _FORM_ESCAPE.sub(
                lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), raw[1:-1]
            )
        if key.endswith("*"):  # RFC 5987: charset'lang'percent-encoded
            charset, _, rest = raw.strip().partition("'")
            raw = unquote(rest.partition("'")[2], encoding=charset or "utf-8", errors="replace")
            key = key[:-1]
            params[key] = raw
        else:
            params.setdefault(key, raw.strip())
    return params


def parse_multipart(body: bytes, content_type: str) -> list[FormPart]:
    """The parts of a ``multipart/form-data`` body; UserError (400) when it is malformed."""
    boundary = _header_params(content_type).get("boundary")
    if not boundary or len(boundary) > 200:
        raise UserError("the multipart body has no boundary", code="invalid_multipart")
    delimiter = b"--" + boundary.encode("latin-1")
    pos = body.find(delimiter)
    if pos < 0:
        raise UserError("the multipart body holds no parts", code="invalid_multipart")
    pos += len(delimiter)
    parts: list[FormPart] = []
    while not body.startswith(b"--", pos):
        if not body.startswith(b"\r\n", pos):
            raise UserError("malformed multipart body", code="invalid_multipart")
        end = body.find(b"\r\n" + delimiter, pos + 2)
        if end < 0:
            raise UserError("the multipart body is truncated", code="invalid_multipart")
        head, sep, content = body[pos + 2 : end].partition(b"\r\n\r\n")
        if not sep:
            if not head.startswith(b"\r\n"):
                raise UserError("a multipart part has no header end", code="invalid_multipart")
            head, content = b"", head[2:]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", ""))
        if "name" not in disposition:
            raise UserError("a multipart part has no name", code="invalid_multipart")
        if "\x00" in disposition["name"] or "\x00" in disposition.get("filename", ""):
            raise UserError(
                "a multipart part's name or filename may not contain the NUL character",
                code="invalid_value",
            )
        parts.append(FormPart(disposition["name"], disposition.get("filename"), content))
        pos = end + 2 + len(delimiter)
    return parts


async def read_upload(request: Request, limit: int) -> bytes:
    """A multipart body, refused (413) once it is past ``limit`` plus the form's overhead."""
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"the file exceeds {limit} bytes", code="file_too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit + _MULTIPART_OVERHEAD:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + _MULTIPART_OVERHEAD:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def basename(filename: str | None) -> str:
    """An uploaded file's name without any directory part (``upload`` when empty)."""
    name = re.split(r"[\\/]", filename or "")[-1].strip()
    return name[:255] or "upload"
