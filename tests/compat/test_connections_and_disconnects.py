"""Errors keep the keep-alive connection; a client that leaves is not an error; a background
response streamed to a client that leaves still finishes (issue 8)."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cupola.settings import DeploymentConfig
from live_server import LiveServer, make_settings, start_server
from live_server import test_deployments as scripted_deployments

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from fake_chat_upstream import (  # noqa: E402
    Chunk,
    FakeChatUpstream,
    Reply,
    chunk,
    serve_fake_upstream,
    text_chunks,
)


def local_port(response: httpx.Response) -> int:
    """The client-side port of the TCP connection that carried ``response``."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_connection_survives_errors(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400, a 404 and an unexpected exception (a store that breaks for one id) each answer
    in the OpenAI error shape, and the same connection serves the next request."""
    store = server.services.store
    real = store.get_response

    async def breaks_on_boom(project: str, response_id: str) -> Any:
        if response_id == "resp_boom":
            raise RuntimeError("the store broke")
        return await real(project, response_id)

    monkeypatch.setattr(store, "get_response", breaks_on_boom)
    with httpx.Client(base_url=server.openai_url, timeout=30) as http:
        first = http.get("/models")
        assert first.status_code == 200
        port = local_port(first)
        for path, status in [
            ("/responses/resp_boom", 500),
            ("/responses/resp_missing", 404),
            ("/responses/resp_boom/input_items?limit=0", 500),
        ]:
            r = http.get(path)
            assert r.status_code == status, r.text
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert "the store broke" not in r.text  # no internals on the wire
            assert r.headers.get("connection") != "close"
            after = http.get("/models")
            assert after.status_code == 200
            assert local_port(r) == local_port(after) == port
        bad = http.post(
            "/responses", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400
        assert local_port(bad) == port == local_port(http.get("/models"))
    # the unexpected one is logged, once per request, with its traceback
    unhandled = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert len(unhandled) == 2 and all(r.exc_info for r in unhandled)


def test_a_client_leaving_mid_request_is_not_an_error(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that sends half its body and hangs up: nothing is logged as an error, and the
    server goes on serving."""
    caplog.set_level(logging.DEBUG)
    host, port = server.url.removeprefix("http://").split(":")
    project = f"/api/projects/{server.settings.project}"
    for path in [
        f"{project}/openai/v1/responses",
        f"{project}/openai/v1/chat/completions",
        "/anthropic/v1/messages",
        f"{project}/agents/a/versions",
    ]:
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
                "content-length: 1000\r\n\r\n".encode()
                + b'{"model": "echo", "inp'
            )
            time.sleep(0.1)
    time.sleep(0.3)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert errors_logged(caplog) == []
    assert sum("client disconnected" in r.getMessage() for r in caplog.records) == 4


# ---- background streams ------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeChatUpstream]:
    with serve_fake_upstream() as fake:
        yield fake


@pytest.fixture
def gated_server(database_url: str, upstream: FakeChatUpstream) -> Iterator[LiveServer]:
    """A server with ``slow``: an upstream deployment whose stream stops after its first
    chunk until the test opens the gate."""
    deployments = [
        *scripted_deployments(),
        DeploymentConfig(
            name="slow", provider="openai", model="slow", base_url=upstream.base_url, timeout=20
        ),
    ]
    live = start_server(make_settings(database_url, deployments=deployments))
    yield live
    live.stop()


def held_after(first: str, *rest: str) -> list[Chunk]:
    """A streamed reply whose first chunk already carries text (the gate holds after it)."""
    return [chunk("slow", {"role": "assistant", "content": first}), *text_chunks(list(rest))[1:]]


def read_until_first_delta(stream: httpx.Response) -> str:
    """The response id, read from the stream up to the first text delta."""
    response_id = ""
    for line in stream.iter_lines():
        if line.startswith("data: "):
            event = orjson.loads(line[6:])
            if event["type"] == "response.created":
                response_id = event["response"]["id"]
            if event["type"] == "response.output_text.delta":
                return response_id
    raise AssertionError("the stream ended before any text")


def poll(server: LiveServer, response_id: str, until: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = httpx.get(f"{server.openai_url}/responses/{response_id}").json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_background_stream_finishes_after_its_client_leaves(
    gated_server: LiveServer, upstream: FakeChatUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    upstream.reply("slow", Reply(held_after("Hello", ", ", "world"), gate=gate))
    body = {"model": "slow", "input": "hi", "stream": True, "background": True}
    with httpx.stream("POST", f"{gated_server.openai_url}/responses", json=body) as stream:
        assert stream.status_code == 200
        response_id = read_until_first_delta(stream)
    # the client has gone; the run has not
    now = httpx.get(f"{gated_server.openai_url}/responses/{response_id}").json()
    assert now["status"] in ("queued", "in_progress")  # not terminal yet: the gate holds it
    gate.set()
    done = poll(gated_server, response_id, {"completed", "failed", "incomplete", "cancelled"})
    assert done["status"] == "completed", done
    assert done["output"][0]["content"][0]["text"] == "Hello, world"
    assert errors_logged(caplog) == []


def test_a_background_stream_whose_client_left_can_be_cancelled(
    gated_server: LiveServer, upstream: FakeChatUpstream
) -> None:
    gate = threading.Event()
    upstream.reply("slow", Reply(held_after("Hello", "!"), gate=gate))
    body = {"model": "slow", "input": "hi", "stream": True, "background": True}
    with httpx.stream("POST", f"{gated_server.openai_url}/responses", json=body) as stream:
        response_id = read_until_first_delta(stream)
    r = httpx.post(f"{gated_server.openai_url}/responses/{response_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    gate.set()
    time.sleep(0.3)
    assert poll(gated_server, response_id, set())["status"] == "cancelled"


def test_a_foreground_stream_whose_client_leaves_is_not_an_error(
    gated_server: LiveServer, upstream: FakeChatUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    upstream.reply("slow", Reply(held_after("a", "b"), gate=gate))
    body = {"model": "slow", "input": "hi", "stream": True}
    with httpx.stream("POST", f"{gated_server.openai_url}/responses", json=body) as stream:
        read_until_first_delta(stream)
    gate.set()
    time.sleep(0.5)
    assert httpx.get(f"{gated_server.url}/healthz").status_code == 200
    assert errors_logged(caplog) == []
