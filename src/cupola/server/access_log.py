"""The access log line: ``METHOD path status ms request-id`` at INFO on ``cupola.access``,
one per request. :class:`~cupola.server.middleware.RequestContext` writes it when the
response ends (for a stream: when its last byte is sent, or the client leaves); a request
the server never answered logs status 0.

The line is formatted here and handed to the logger as a finished record
(:meth:`logging.Logger.handle`): the logger's level, filters and handlers decide as for
any record, but what :meth:`logging.Logger.info` does on the way is skipped (the search for
the calling frame, and building the record's constant fields again). Secret redaction
stays exactly as for every other record: the line is redacted with the registries
:func:`cupola.secrets.install_redaction` installed, and when another library has installed
its own record factory (to add trace ids, say) the record is made by that factory as usual.
``path`` is the URL path without its query string (ASGI keeps them apart), so a key passed
as a query parameter never reaches the line.

The record also carries the line's fields as attributes (``method``, ``path``, ``status``,
``duration_ms``, ``request_id``), redacted as the line is, for structured formats
(:class:`cupola.server.logs.JsonFormatter` writes them as keys).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from cupola.secrets import plain_log_records, redact_logged

access_log = logging.getLogger("cupola.access")

_INFO = logging.INFO
_SOURCE = __file__
_FUNC = "log_request"
_MAX_THREADS = 64

_templates: dict[int, dict[str, Any]] = {}
"""Thread id -> the fields every access record made on that thread shares (its process,
thread, source and level); only its time and message change per record."""
if hasattr(os, "register_at_fork"):  # POSIX: a forked child has another process id
    os.register_at_fork(after_in_child=_templates.clear)


def access_log_enabled() -> bool:
    """Whether a line would be written now (the ``cupola.access`` logger's level)."""
    return access_log.isEnabledFor(_INFO)


def log_request(method: str, path: str, status: int, started: float, request_id: str) -> None:
    """Log one request; ``started`` is its :func:`time.perf_counter` at arrival."""
    if not access_log.isEnabledFor(_INFO):
        return
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    line = f"{method} {path} {status} {elapsed:.1f}ms {request_id}"
    clean = redact_logged(line)
    if clean != line:  # a registered secret in the path or the client's request id
        method, path = redact_logged(method), redact_logged(path)
        request_id = redact_logged(request_id)
    if plain_log_records():
        record = _record(clean)
    else:
        record = access_log.makeRecord(access_log.name, _INFO, _SOURCE, 0, line, (), None, _FUNC)
    fields = record.__dict__
    fields["method"] = method
    fields["path"] = path
    fields["status"] = status
    fields["duration_ms"] = elapsed
    fields["request_id"] = request_id
    access_log.handle(record)


def _record(message: str) -> logging.LogRecord:
    """The record :class:`logging.LogRecord` would make for ``message`` on this thread,
    from a per-thread copy of its constant fields."""
    thread = threading.get_ident()
    template = _templates.get(thread)
    if template is None:
        if len(_templates) >= _MAX_THREADS:  # threads come and go
            _templates.clear()
        made = logging.LogRecord(access_log.name, _INFO, _SOURCE, 0, "", (), None, _FUNC)
        template = _templates[thread] = dict(vars(made))
    record: logging.LogRecord = logging.LogRecord.__new__(logging.LogRecord)
    fields = record.__dict__
    fields.update(template)
    now = time.time()
    fields["created"] = now
    fields["msecs"] = int((now - int(now)) * 1000) + 0.0
    fields["relativeCreated"] = template["relativeCreated"] + (now - template["created"]) * 1000
    fields["msg"] = message
    if "taskName" in template:  # Python 3.12+: the asyncio task logging the line
        fields["taskName"] = _task_name()
    return record


def _task_name() -> str | None:
    """The current asyncio task's name, as :class:`logging.LogRecord` records it."""
    asyncio = sys.modules.get("asyncio")
    if not getattr(logging, "logAsyncioTasks", False) or asyncio is None:
        return None
    try:
        name: str = asyncio.current_task().get_name()
    except Exception:  # no running loop or task: the record says None, as logging's does
        return None
    return name
