"""Log correlation and formats: every log record carries the ``request_id`` of the request
being served and the ``trace_id`` of its trace (``-`` when there is none), and the server
writes its lines as text or as one JSON object per line (``server.log_format``).

The request id is kept in a context variable that
:class:`~cupola.server.middleware.RequestContext` sets for each request, so a record made
anywhere while the request is served (a model call's line, a tool's warning, the access
line) gets it, and so do the tasks the request starts (they copy the context). The trace id
is the one :func:`cupola.telemetry.current_trace_id` promised the request (the one sent
back as ``x-cupola-trace-id``), or the current OpenTelemetry span's outside a request.

:class:`LogContext` is a :class:`logging.Filter` for handlers: it only adds attributes, so
it never drops a record and costs two context-variable reads. Secret redaction happens
before, when the record is made (:func:`cupola.secrets.install_redaction`); the JSON
formatter redacts the access line's extra fields again only when a registered value was
found in them (see :mod:`cupola.server.access_log`).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
from opentelemetry.trace import get_current_span

from cupola.telemetry import current_trace_id

LogFormat = Literal["text", "json"]
NONE = "-"
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s request_id=%(request_id)s trace_id=%(trace_id)s"
"""The text line: level, logger, message, then the request and trace ids."""
ACCESS_FIELDS = ("method", "path", "status", "duration_ms")
"""The access line's fields, set on its record and written as keys of its JSON object."""

_request_id: ContextVar[str | None] = ContextVar("cupola_request_id", default=None)


def set_request_id(request_id: str) -> Token[str | None]:
    """Mark the current context (a request being served) with its request id; give the
    token back to :func:`reset_request_id` when the request ends."""
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    """End what :func:`set_request_id` started."""
    _request_id.reset(token)


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return _request_id.get()


def trace_id_now() -> str | None:
    """The trace id of the request being served (the one its response names), else of the
    current span (a run outside any request), else None."""
    promised = current_trace_id()
    if promised is not None:
        return promised
    context = get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


class LogContext(logging.Filter):
    """Adds ``request_id`` and ``trace_id`` to each record a handler gets (``-`` when
    none); a record that already carries one (the access line names its request) keeps
    it. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if fields.get("request_id") is None:
            fields["request_id"] = _request_id.get() or NONE
        if fields.get("trace_id") is None:
            fields["trace_id"] = trace_id_now() or NONE
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC, milliseconds), ``level``,
    ``logger``, ``message``, ``request_id``, ``trace_id``; for an access line also
    ``method``, ``path``, ``status`` and ``duration_ms``; ``exception`` and ``stack`` when the
    record has them. The message is the redacted one the record was made with."""

    _second: tuple[int, str] = (-1, "")
    """The last whole second formatted, and its text (records come in bursts)."""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cached = self._second = (second, text)
        return f"{cached[1]}.{int(record.msecs):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        line: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": fields.get("request_id") or NONE,
            "trace_id": fields.get("trace_id") or NONE,
        }
        if "status" in fields and "method" in fields:
            for name in ACCESS_FIELDS:
                line[name] = fields.get(name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


def log_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing ``log_format`` lines with the request
    and trace ids."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(LogContext())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    return handler


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Log everything at ``level`` and above, from every logger (uvicorn's included, which
    then propagate to the root), through one handler in ``log_format``."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "cupola_log_handler", False):
            root.removeHandler(old)
    handler = log_handler(log_format)
    handler.cupola_log_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings become records in the same format
