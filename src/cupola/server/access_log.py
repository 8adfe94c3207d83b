"""The access log line: ``METHOD path status ms request-id`` at INFO on ``cupola.access``,
one per request. :class:`~cupola.server.middleware.RequestContext` writes it when the
response ends (for a stream: when its last byte is sent, or the client leaves); a request
the server never answered logs status 0.

The line is formatted here and handed to the logger as a finished record
(:meth:`logging.Logger.handle`), which skips what :meth:`logging.Logger.info` would add on
the way: the search for the calling frame, about two thirds of the cost of a line. The
record is still made by the process's record factory, so secret redaction
(:func:`cupola.secrets.install_redaction`) and any factory another library installed
apply to it as to every other record, and the logger's level, filters and handlers decide
as usual. ``path`` is the URL path without its query string (ASGI keeps them apart), so a
key passed as a query parameter never reaches the line.
"""

from __future__ import annotations

import logging
import time

access_log = logging.getLogger("cupola.access")

_INFO = logging.INFO
_SOURCE = __file__


def access_log_enabled() -> bool:
    """Whether a line would be written now (the ``cupola.access`` logger's level)."""
    return access_log.isEnabledFor(_INFO)


def log_request(method: str, path: str, status: int, started: float, request_id: str) -> None:
    """Log one request; ``started`` is its :func:`time.perf_counter` at arrival."""
    if not access_log.isEnabledFor(_INFO):
        return
    elapsed = (time.perf_counter() - started) * 1000
    line = f"{method} {path} {status} {elapsed:.1f}ms {request_id}"
    record = access_log.makeRecord(
        access_log.name, _INFO, _SOURCE, 0, line, (), None, "log_request"
    )
    access_log.handle(record)
