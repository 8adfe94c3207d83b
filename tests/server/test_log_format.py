"""Every log line names its request and its trace (issue 9): ``cupola serve`` in its own
process, in the text format and with ``--log-format json``; a model call's line and the
access line of the same request carry the request id of ``x-request-id`` and the trace id
of ``x-cupola-trace-id``, and a connection's secret, sent in the input, the path and the
client's request id, appears on no line."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_server import serve_process

SECRET = "sk-logs-" + secrets.token_hex(12)
RESPONSES = "/api/projects/default/openai/v1/responses"
TEXT_LINE = re.compile(r"^(\w+) ([\w.]+): (.*) request_id=(\S+) trace_id=(\S+)$")


def write_config(tmp_path: Path, log_format: str | None = None) -> Path:
    server = f"server:\n  log_format: {log_format}\n" if log_format else ""
    config = tmp_path / "cupola.yaml"
    config.write_text(
        f"project: default\ndata_dir: {tmp_path / 'data'}\n{server}"
        "deployments:\n  - name: echo\n    provider: scripted\n    mode: echo\n"
    )
    return config


def drive(url: str) -> httpx.Response:
    """Register a secret (a connection's key), then a response whose input, path and
    request id carry it; returns the response's answer."""
    project = f"{url}/api/projects/default"
    put = httpx.put(
        f"{project}/connections/logs-api",
        json={
            "type": "ApiKey",
            "target": "https://api.example.com",
            "credentials": {"type": "ApiKey", "key": SECRET},
        },
    )
    assert put.status_code == 200, put.text
    r = httpx.post(
        f"{url}{RESPONSES}",
        json={"model": "echo", "input": f"my key is {SECRET}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    missing = httpx.get(f"{url}{RESPONSES}/{SECRET}", headers={"x-request-id": f"req_{SECRET}"})
    assert missing.status_code == 404
    return r


def served(tmp_path: Path, *args: str, log_format: str | None = None) -> tuple[httpx.Response, str]:
    """Run ``cupola serve`` with ``args``, drive it, and return the answer and all it wrote
    (stdout and stderr)."""
    output = tmp_path / "serve.log"
    config = write_config(tmp_path, log_format)
    with serve_process(config, "--log-level", "debug", *args, output=output) as (url, _proc):
        answer = drive(url)
        deadline = time.monotonic() + 10
        while f"{RESPONSES}/" not in output.read_text(errors="replace"):
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
    return answer, output.read_text(errors="replace")


def model_call(message: str, response_id: str) -> bool:
    return '"event":"model_call"' in message and response_id in message


def test_text_lines_carry_request_and_trace_ids(tmp_path: Path) -> None:
    answer, out = served(tmp_path)
    assert SECRET not in out
    request_id, trace_id = answer.headers["x-request-id"], answer.headers["x-cupola-trace-id"]
    response_id = answer.json()["id"]
    lines = [m for m in map(TEXT_LINE.match, out.splitlines()) if m]
    calls = [m for m in lines if m[2] == "cupola.models" and model_call(m[3], response_id)]
    assert len(calls) == 1, out
    assert calls[0].group(4, 5) == (request_id, trace_id)
    access = [m for m in lines if m[2] == "cupola.access" and m[3].startswith(f"POST {RESPONSES}")]
    assert len(access) == 1, out
    assert access[0][1] == "INFO" and access[0][3].endswith(f"ms {request_id}")
    assert access[0].group(4, 5) == (request_id, trace_id)
    refused = [m for m in lines if m[2] == "cupola.access" and m[3].startswith("GET ")]
    assert refused and refused[-1][3].startswith(f"GET {RESPONSES}/*** 404 ")
    assert refused[-1][4] == "req_***"
    # uvicorn's own lines come through the same handler, ids and all
    assert any(m[2].startswith("uvicorn") and m[4] == "-" for m in lines), out


def json_lines(out: str) -> list[dict[str, Any]]:
    lines = []
    for text in out.splitlines():
        if text.strip():
            line = json.loads(text)  # every line is one JSON object
            assert isinstance(line, dict), text
            lines.append(line)
    return lines


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_json_lines_carry_request_and_trace_ids(tmp_path: Path, how: str) -> None:
    if how == "flag":
        answer, out = served(tmp_path, "--log-format", "json")
    else:
        answer, out = served(tmp_path, log_format="json")
    assert SECRET not in out
    lines = json_lines(out)
    request_id, trace_id = answer.headers["x-request-id"], answer.headers["x-cupola-trace-id"]
    response_id = answer.json()["id"]
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id", "trace_id"} <= set(line)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", line["time"])
    calls = [x for x in lines if x["logger"] == "cupola.models" and model_call(x["message"], "")]
    mine = [x for x in calls if response_id in x["message"]]
    assert len(mine) == 1, out
    assert (mine[0]["request_id"], mine[0]["trace_id"]) == (request_id, trace_id)
    assert mine[0]["level"] == "DEBUG"
    assert json.loads(mine[0]["message"])["response_id"] == response_id
    access = [x for x in lines if x["logger"] == "cupola.access"]
    posted = [x for x in access if x.get("method") == "POST" and x["path"] == RESPONSES]
    assert len(posted) == 1, out
    line = posted[0]
    assert (line["request_id"], line["trace_id"]) == (request_id, trace_id)
    assert line["status"] == 200 and isinstance(line["duration_ms"], float)
    assert line["message"].startswith(f"POST {RESPONSES} 200 ")
    (missing,) = [x for x in access if x["method"] == "GET" and x["status"] == 404]
    assert missing["path"] == f"{RESPONSES}/***" and missing["request_id"] == "req_***"
    assert any(x["message"].startswith("cupola serving project") for x in lines)
