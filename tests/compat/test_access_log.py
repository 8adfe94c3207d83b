"""An access log line per request (method, path, status, ms, request id), on by default,
off with ``server.access_log: false`` or ``cupola serve --no-access-log``; uvicorn's own
access log stays off, so no line is doubled (issue 8)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cupola.secrets import REGISTRY, install_redaction
from cupola.server.access_log import log_request
from live_server import LiveServer, make_settings, serve_process, start_server

LINE = re.compile(r"^(GET|POST|DELETE|PUT|PATCH) (\S+) (\d{3}) (\d+\.\d)ms (\S+)$")


def access_lines(caplog: pytest.LogCaptureFixture, expect: int = 0) -> list[str]:
    """The access lines logged so far, waiting up to 5 s for ``expect`` of them: the server
    thread writes a line once the response has ended, which may be just after the client
    has read it."""
    deadline = time.monotonic() + 5
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "cupola.access"]
        if len(lines) >= expect or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def test_each_request_gets_one_line(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cupola.access")
    r = httpx.post(
        f"{server.openai_url}/responses",
        json={"model": "echo", "input": "hi"},
        headers={"x-request-id": "req_from_the_client"},
    )
    missing = httpx.get(f"{server.openai_url}/responses/resp_nope")
    lines = access_lines(caplog, expect=2)
    assert len(lines) == 2, lines
    created, not_found = (LINE.match(line) for line in lines)
    assert created and not_found
    assert created.group(1, 2, 3, 5) == (
        "POST",
        "/api/projects/default/openai/v1/responses",
        "200",
        "req_from_the_client",
    )
    assert not_found.group(1, 3) == ("GET", "404")
    assert not_found.group(5) == missing.headers["x-request-id"]
    assert r.status_code == 200


def test_a_stream_is_logged_when_it_ends(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cupola.access")
    body = {"model": "echo", "input": "hi", "stream": True}
    with httpx.stream("POST", f"{server.openai_url}/responses", json=body) as r:
        text = "".join(r.iter_text())
    assert "response.completed" in text
    (line,) = access_lines(caplog, expect=1)
    match = LINE.match(line)
    assert match and match.group(3) == "200"


def test_refused_requests_are_logged_too(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A request the gate refuses (here a cross-site POST) still gets its line, with the
    status and request id the client saw."""
    caplog.set_level(logging.INFO, logger="cupola.access")
    r = httpx.post(
        f"{server.openai_url}/responses",
        json={"model": "echo", "input": "hi"},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 403
    (line,) = access_lines(caplog, expect=1)
    match = LINE.match(line)
    assert match and match.group(1, 3, 5) == ("POST", "403", r.headers["x-request-id"])


def test_known_secrets_never_reach_the_line(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The line goes through the process's redaction like every record: a registered
    secret in the path or the client's request id comes out as ``***``; a query string is
    never logged."""
    secret = "sk-access-line-secret-4b1d"
    REGISTRY.add(secret)
    caplog.set_level(logging.INFO, logger="cupola.access")
    httpx.get(
        f"{server.openai_url}/responses/{secret}?key={secret}&other=visible-query",
        headers={"x-request-id": f"req_{secret}"},
    )
    (line,) = access_lines(caplog, expect=1)
    assert secret not in line and "visible-query" not in line
    assert line.startswith("GET /api/projects/default/openai/v1/responses/*** 404 "), line
    assert line.endswith(" req_***"), line
    for record in caplog.records:
        assert secret not in record.getMessage()


def test_it_can_be_turned_off(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cupola.access")
    live = start_server(make_settings(database_url, server={"access_log": False}))
    try:
        assert httpx.get(f"{live.url}/healthz").status_code == 200
    finally:
        live.stop()
    assert access_lines(caplog) == []


def served_output(config: Path, *args: str) -> str:
    with serve_process(config, *args) as (url, proc):
        httpx.get(f"{url}/api/projects/default/agents/nobody", headers={"x-request-id": "req_x1"})
        httpx.get(f"{url}/v1/models")
        time.sleep(0.3)
    assert proc.stdout is not None
    return proc.stdout.read().decode()


def test_cupola_serve_logs_requests_by_default(tmp_path: Path) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text(
        f"project: default\ndata_dir: {tmp_path / 'data'}\n"
        "deployments:\n  - name: echo\n    provider: scripted\n    mode: echo\n"
    )
    out = served_output(config)
    assert "INFO cupola.access: GET /api/projects/default/agents/nobody 404 " in out, out
    assert re.search(r"cupola\.access: GET /v1/models 200 \d+\.\dms req_\w+", out), out
    assert out.count("/v1/models") == 1, out  # uvicorn's own access log stays off
    assert "HTTP/1.1" not in out
    quiet = served_output(config, "--no-access-log")
    assert "cupola.access" not in quiet and "HTTP/1.1" not in quiet, quiet


def _captured(run: Callable[[], None]) -> list[logging.LogRecord]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("cupola.access")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        run()
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    return records


def test_the_record_is_a_complete_log_record() -> None:
    """The line's record has every field a ``logger.info`` record has, with this process,
    thread and time, so any format string or structured formatter works on it."""
    started = time.perf_counter()
    (fast,) = _captured(lambda: log_request("GET", "/v1/models", 200, started, "req_1"))
    (slow,) = _captured(lambda: logging.getLogger("cupola.access").info("x"))
    # and the line's fields, for structured formats (issue 9)
    assert set(vars(fast)) == set(vars(slow)) | {
        "method",
        "path",
        "status",
        "duration_ms",
        "request_id",
    }
    assert (fast.method, fast.path, fast.status, fast.request_id) == (
        "GET",
        "/v1/models",
        200,
        "req_1",
    )
    assert (fast.process, fast.thread, fast.levelname) == (slow.process, slow.thread, "INFO")
    assert abs(fast.created - time.time()) < 5 and 0 <= fast.msecs < 1000
    assert abs(fast.relativeCreated - slow.relativeCreated) < 5000
    full = logging.Formatter(
        "%(asctime)s %(process)d %(threadName)s %(module)s %(funcName)s %(levelname)s "
        "%(name)s: %(message)s"
    )
    assert re.search(
        r" access_log log_request INFO cupola.access: GET /v1/models 200 ", full.format(fast)
    )
    assert LINE.match(fast.getMessage())


def test_another_record_factory_is_still_used() -> None:
    """With a record factory some other library installed (here one adding a trace id),
    the line's record is made by it, and redaction still applies."""
    secret = "sk-access-factory-secret-77c2"
    install_redaction()  # as build_services does (idempotent)
    REGISTRY.add(secret)
    previous = logging.getLogRecordFactory()

    def traced(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.trace_id = "trace-1"
        return record

    logging.setLogRecordFactory(traced)
    try:
        (record,) = _captured(lambda: log_request("GET", f"/x/{secret}", 404, 0.0, "req_2"))
    finally:
        logging.setLogRecordFactory(previous)
    assert record.trace_id == "trace-1"
    assert secret not in record.getMessage() and "/x/*** 404" in record.getMessage()
    assert record.path == "/x/***"
