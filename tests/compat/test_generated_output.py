"""What the server generates itself is bounded and storable (issue 8). An echo chain grew
one item to 13.9 MB: past ``server.max_item_bytes`` the response now ends ``incomplete``,
with nothing half-written kept, stored or appended to the conversation. A model reply with a
NUL character (which PostgreSQL cannot store) is stored with U+FFFD in its place."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from cupola.settings import DeploymentConfig, ScriptStep
from live_server import LiveServer, make_settings, start_server
from live_server import test_deployments as scripted_deployments
from spec import assert_valid_event, assert_valid_response

CAP = 4096


@pytest.fixture(scope="module")
def capped(database_url: str) -> Iterator[LiveServer]:
    nul_bot = DeploymentConfig(
        name="nul-bot",
        provider="scripted",
        mode="script",
        script=[ScriptStep(reply="before\u0000after")],
    )
    deployments = [*scripted_deployments(), nul_bot]
    settings = make_settings(database_url, deployments=deployments, server={"max_item_bytes": CAP})
    live = start_server(settings)
    yield live
    live.stop()


def item_sizes(body: dict[str, Any]) -> list[int]:
    return [len(orjson.dumps(item)) for item in body["output"]]


def test_an_echo_chain_stops_growing_at_the_cap(capped: LiveServer) -> None:
    """The echo model replies with the whole history, so a chain doubles each turn; the turn
    that would write an item past the cap ends incomplete and keeps no part of it."""
    previous: str | None = None
    statuses = []
    for turn in range(12):
        body: dict[str, Any] = {"model": "echo", "input": f"turn {turn} " + "x" * 300}
        if previous:
            body["previous_response_id"] = previous
        r = httpx.post(f"{capped.openai_url}/responses", json=body, timeout=30)
        assert r.status_code == 200, r.text
        response = r.json()
        statuses.append(response["status"])
        assert all(size <= CAP + 512 for size in item_sizes(response))
        if response["status"] == "incomplete":
            break
        previous = response["id"]
    assert statuses[0] == "completed" and statuses[-1] == "incomplete", statuses
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"] == []  # the message that grew too large is not kept
    assert_valid_response(response)
    stored = httpx.get(f"{capped.openai_url}/responses/{response['id']}").json()
    assert stored["status"] == "incomplete" and stored["output"] == []


def test_a_streamed_reply_past_the_cap_ends_incomplete(capped: LiveServer) -> None:
    body = {"model": "echo", "input": "y" * (CAP + 100), "stream": True}
    events = []
    with httpx.stream("POST", f"{capped.openai_url}/responses", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
    for event in events:
        assert_valid_event(event)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "response.incomplete"
    assert "response.output_item.done" not in kinds  # the item was never finished
    final = events[-1]["response"]
    assert final["output"] == [] and final["incomplete_details"] == {"reason": "max_output_tokens"}
    stored = httpx.get(f"{capped.openai_url}/responses/{final['id']}").json()
    assert stored["status"] == "incomplete" and stored["output"] == []


def test_a_conversation_gets_nothing_of_the_item(capped: LiveServer) -> None:
    conv = httpx.post(f"{capped.openai_url}/conversations", json={}).json()["id"]
    ok = httpx.post(
        f"{capped.openai_url}/responses",
        json={"model": "echo", "input": "short", "conversation": conv},
    ).json()
    assert ok["status"] == "completed"
    big = httpx.post(
        f"{capped.openai_url}/responses",
        json={"model": "echo", "input": "z" * (CAP + 10), "conversation": conv},
    ).json()
    assert big["status"] == "incomplete"
    items = httpx.get(f"{capped.openai_url}/conversations/{conv}/items?order=asc").json()["data"]
    assert max(len(orjson.dumps(i)) for i in items) < CAP + 1024
    assert [i["role"] for i in items if i["type"] == "message"][:2] == ["user", "assistant"]


def test_the_default_cap_leaves_ordinary_replies_alone(server: LiveServer) -> None:
    assert server.settings.server.max_item_bytes == 1024 * 1024
    text = "w" * 100_000
    r = httpx.post(f"{server.openai_url}/responses", json={"model": "echo", "input": text})
    assert r.json()["status"] == "completed"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("background", [False, True])
def test_a_reply_with_a_nul_character_is_stored(
    capped: LiveServer, stream: bool, background: bool
) -> None:
    body = {"model": "nul-bot", "input": "hi", "stream": stream, "background": background}
    if stream:
        with httpx.stream("POST", f"{capped.openai_url}/responses", json=body) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        response_id = orjson.loads(lines[0][6:])["response"]["id"]
        assert orjson.loads(lines[-1][6:])["type"] == "response.completed"
    else:
        r = httpx.post(f"{capped.openai_url}/responses", json=body)
        assert r.status_code == 200, r.text
        response_id = r.json()["id"]
    deadline = 50
    while True:
        stored = httpx.get(f"{capped.openai_url}/responses/{response_id}").json()
        if stored["status"] not in ("queued", "in_progress") or deadline == 0:
            break
        deadline -= 1
        time.sleep(0.1)
    assert stored["status"] == "completed", stored
    assert stored["output"][0]["content"][0]["text"] == "before\ufffdafter"


@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_completion_past_the_cap_ends_with_length(capped: LiveServer, stream: bool) -> None:
    """The cap holds on /chat/completions too: the reply stops, finish_reason ``length``."""
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "q" * (CAP + 100)}],
        "stream": stream,
    }
    url = f"{capped.openai_url}/chat/completions"
    if not stream:
        r = httpx.post(url, json=body, timeout=30)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "length"
        assert len(choice["message"]["content"] or "") <= CAP  # nothing past the cap
        return
    chunks = []
    with httpx.stream("POST", url, json=body, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                chunks.append(line[6:])
    assert chunks[-1] == "[DONE]"
    parsed = [orjson.loads(c) for c in chunks[:-1]]
    assert not any("error" in c for c in parsed)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"])
    assert len(text.encode()) <= CAP
    assert parsed[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_a_message_past_the_cap_ends_with_max_tokens(capped: LiveServer, stream: bool) -> None:
    """And on the Anthropic Messages API: stop_reason ``max_tokens``."""
    body = {
        "model": "echo",
        "max_tokens": 100_000,
        "messages": [{"role": "user", "content": "m" * (CAP + 100)}],
        "stream": stream,
    }
    url = f"{capped.url}/anthropic/v1/messages"
    if not stream:
        r = httpx.post(url, json=body, timeout=30)
        assert r.status_code == 200, r.text
        message = r.json()
        assert message["stop_reason"] == "max_tokens"
        assert sum(len(b.get("text", "")) for b in message["content"]) <= CAP
        return
    events = []
    with httpx.stream("POST", url, json=body, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "error" not in kinds
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "max_tokens"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert len(text.encode()) <= CAP
