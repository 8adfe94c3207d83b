"""Run hooks on a live server: a recording hook sees run start, each model call, each tool
call, each item and run end, in order, for every protocol and every way of running; a hook
that breaks is logged and ignored; a hook that raises ``RunStopped`` ends the run."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

import live_server
from cupola.domain.records import Item
from cupola.exceptions import CupolaError
from cupola.runtime.hooks import (
    ModelCall,
    ModelEnd,
    RunEnd,
    RunHooks,
    RunInfo,
    RunStopped,
    ToolRun,
)
from cupola.server.app import build_services
from cupola.settings import DeploymentConfig, ScriptStep
from live_server import LiveServer, free_port, make_settings, start_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge"
PICKY = DeploymentConfig(
    name="picky",
    provider="scripted",
    mode="script",
    script=[ScriptStep(match=r"^only this$", reply="ok")],
)
WEATHER_FUNCTION = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


class Recorder(RunHooks):
    """Records what each run's hooks saw, by response id (the server runs in a thread of its
    own; ``list.append`` is atomic)."""

    def __init__(self) -> None:
        self.runs: dict[str, RunInfo] = {}
        self.seen: dict[str, list[tuple[Any, ...]]] = {}
        self.ends: dict[str, RunEnd] = {}

    def _log(self, run: RunInfo, *entry: Any) -> None:
        self.seen.setdefault(run.response_id, []).append(entry)

    async def on_run_start(self, run: RunInfo) -> None:
        self.runs[run.response_id] = run
        self._log(run, "run_start", run.api)

    async def on_model_start(self, call: ModelCall) -> None:
        self._log(call.run, "model_start", call.index)

    async def on_model_end(self, call: ModelCall, end: ModelEnd) -> None:
        if end.finish is not None:
            self._log(call.run, "model_end", call.index, end.finish.reason)
        else:
            code = end.error.code if isinstance(end.error, CupolaError) else repr(end.error)
            self._log(call.run, "model_error", call.index, code)

    async def on_tool_start(self, tool: ToolRun) -> None:
        self._log(tool.run, "tool_start", tool.call.name)

    async def on_tool_end(self, tool: ToolRun, item: Item) -> None:
        self._log(tool.run, "tool_end", tool.call.name, item["type"])

    async def on_item(self, run: RunInfo, item: Item) -> None:
        self._log(run, "item", item["type"])

    async def on_run_end(self, run: RunInfo, end: RunEnd) -> None:
        self.ends[run.response_id] = end
        self._log(run, "run_end", end.status, len(end.reports))

    def run_with(self, marker: str, *, timeout: float = 15) -> list[tuple[Any, ...]]:
        """What the hooks saw of the one run whose input holds ``marker``, once it ended."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                rid for rid, run in list(self.runs.items()) if marker in json.dumps(run.input_items)
            ]
            if len(found) == 1 and found[0] in self.ends:
                return self.seen[found[0]]
            assert len(found) <= 1 and time.monotonic() < deadline, (marker, found)
            time.sleep(0.02)

    def end_of(self, marker: str) -> RunEnd:
        self.run_with(marker)
        (rid,) = [r for r, run in self.runs.items() if marker in json.dumps(run.input_items)]
        return self.ends[rid]


class Broken(RunHooks):
    """A hook whose every method raises an ordinary exception."""

    async def on_run_start(self, run: RunInfo) -> None:
        raise RuntimeError("broken hook")

    async def on_model_end(self, call: ModelCall, end: ModelEnd) -> None:
        raise RuntimeError("broken hook")

    async def on_tool_end(self, tool: ToolRun, item: Item) -> None:
        raise RuntimeError("broken hook")

    async def on_item(self, run: RunInfo, item: Item) -> None:
        raise RuntimeError("broken hook")

    async def on_run_end(self, run: RunInfo, end: RunEnd) -> None:
        raise RuntimeError("broken hook")


class Gate(RunHooks):
    """Stops any run whose input says ``forbidden`` (what a guardrail will do)."""

    async def on_run_start(self, run: RunInfo) -> None:
        if "forbidden" in json.dumps(run.input_items):
            raise RunStopped("the input is not allowed here", code="input_blocked")

    async def on_run_end(self, run: RunInfo, end: RunEnd) -> None:
        if "too late" in json.dumps(run.input_items):
            raise RunStopped("nothing left to stop", code="too_late")


class Hold(RunHooks):
    """Holds a model call whose run's input says ``hold`` (a slow model, for cancelling)."""

    async def on_model_start(self, call: ModelCall) -> None:
        if "hold" in json.dumps(call.run.input_items):
            await asyncio.sleep(30)


RECORDER = Recorder()


@pytest.fixture(scope="module")
def hooked(database_url: str) -> Iterator[LiveServer]:
    settings = make_settings(database_url, deployments=[*live_server.test_deployments(), PICKY])
    services = build_services(settings, hooks=[RECORDER, Broken(), Gate(), Hold()])
    live = start_server(settings, services)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def travel_url() -> Iterator[str]:
    """The travel example's MCP server over streamable HTTP, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "mcp_server.py"), "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "MCP server did not start"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def client(hooked: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=hooked.openai_url, api_key="x", max_retries=0, timeout=60)


def travel(url: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "travel", "server_url": url, "require_approval": "never"}


SERVER_TOOL_RUN = [
    ("run_start", "responses"),
    ("item", "mcp_list_tools"),
    ("model_start", 0),
    ("model_end", 0, "tool_calls"),
    ("tool_start", "get_weather"),
    ("tool_end", "get_weather", "mcp_call"),
    ("item", "mcp_call"),
    ("model_start", 1),
    ("model_end", 1, "stop"),
    ("item", "message"),
    ("run_end", "completed", 2),
]


@pytest.mark.parametrize("mode", ["plain", "stream", "background", "background-stream"])
def test_server_tool_round_trip_seen_in_order(
    client: openai.OpenAI, travel_url: str, unique: str, mode: str
) -> None:
    question = f"What is the weather in Tokyo? ({unique})"
    args: dict[str, Any] = {
        "model": "weather-bot",
        "input": question,
        "tools": [travel(travel_url)],
    }
    if mode.startswith("background"):
        args["background"] = True
    if mode.endswith("stream"):
        with client.responses.stream(**args) as stream:
            response = stream.get_final_response()
    else:
        response = client.responses.create(**args)
        while response.status in ("queued", "in_progress"):
            time.sleep(0.05)
            response = client.responses.retrieve(response.id)
    assert response.status == "completed", response.error
    assert RECORDER.run_with(unique) == SERVER_TOOL_RUN
    run = RECORDER.runs[response.id]
    assert (run.model, run.stream, run.background) == (
        "weather-bot",
        mode.endswith("stream"),
        mode.startswith("background"),
    )
    end = RECORDER.ends[response.id]
    assert [item["id"] for item in end.output] == [item.id for item in response.output]
    assert len(end.reports) == 2 and end.usage.output_tokens > 0


def test_function_round_trip_chat_completions(client: openai.OpenAI, unique: str) -> None:
    tool = {
        "type": "function",
        "function": {k: v for k, v in WEATHER_FUNCTION.items() if k != "type"},
    }
    question = {"role": "user", "content": f"What is the weather in Tokyo? ({unique})"}
    first = client.chat.completions.create(
        model="weather-bot",
        messages=[question],
        tools=[tool],  # type: ignore[list-item]
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert RECORDER.run_with(unique) == [
        ("run_start", "chat.completions"),
        ("model_start", 0),
        ("model_end", 0, "tool_calls"),
        ("item", "function_call"),
        ("run_end", "completed", 1),
    ]
    marker = f"sunny-{unique}"
    answer = client.chat.completions.create(
        model="weather-bot",
        messages=[
            question,  # type: ignore[list-item]
            first.choices[0].message,  # type: ignore[list-item]
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": json.dumps({"temperature_c": 20, "note": marker}),
            },
        ],
        tools=[tool],  # type: ignore[list-item]
        stream=True,
    )
    assert "sunny" in "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
    assert RECORDER.run_with(marker) == [
        ("run_start", "chat.completions"),
        ("model_start", 0),
        ("model_end", 0, "stop"),
        ("item", "message"),
        ("run_end", "completed", 1),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(hooked: LiveServer, unique: str, stream: bool) -> None:
    sdk = anthropic.Anthropic(base_url=f"{hooked.url}/anthropic", api_key="x", max_retries=0)
    tool = {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": WEATHER_FUNCTION["parameters"],
    }
    question = {"role": "user", "content": f"What is the weather in Tokyo? ({unique})"}
    if stream:
        with sdk.messages.stream(
            model="weather-bot",
            max_tokens=200,
            messages=[question],
            tools=[tool],  # type: ignore[list-item]
        ) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(
            model="weather-bot",
            max_tokens=200,
            messages=[question],
            tools=[tool],  # type: ignore[list-item]
        )
    assert message.stop_reason == "tool_use"
    assert RECORDER.run_with(unique) == [
        ("run_start", "messages"),
        ("model_start", 0),
        ("model_end", 0, "tool_calls"),
        ("item", "function_call"),
        ("run_end", "completed", 1),
    ]


def test_failing_model_seen_as_error(client: openai.OpenAI, unique: str) -> None:
    response = client.responses.create(model="picky", input=f"anything else {unique}")
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "script_mismatch"
    assert RECORDER.run_with(unique) == [
        ("run_start", "responses"),
        ("model_start", 0),
        ("model_error", 0, "script_mismatch"),
        ("run_end", "failed", 0),
    ]
    end = RECORDER.end_of(unique)
    assert isinstance(end.error, CupolaError) and end.error.code == "script_mismatch"


def test_broken_hook_is_logged_and_ignored(
    client: openai.OpenAI, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cupola.hooks")
    response = client.responses.create(model="echo", input=f"hello {unique}")
    assert response.status == "completed" and response.output_text == f"user: hello {unique}"
    RECORDER.run_with(unique)
    failed = {r.getMessage() for r in caplog.records if r.name == "cupola.hooks"}
    assert {
        "hook Broken.on_run_start failed (ignored)",
        "hook Broken.on_model_end failed (ignored)",
        "hook Broken.on_item failed (ignored)",
        "hook Broken.on_run_end failed (ignored)",
    } <= failed
    assert all(r.exc_info for r in caplog.records if r.name == "cupola.hooks")


def test_run_stopped_by_a_hook(client: openai.OpenAI, hooked: LiveServer, unique: str) -> None:
    response = client.responses.create(model="echo", input=f"forbidden {unique}")
    assert response.status == "failed" and response.error is not None
    assert (response.error.code, response.error.message) == (
        "input_blocked",
        "the input is not allowed here",
    )
    assert RECORDER.run_with(unique) == [("run_start", "responses"), ("run_end", "failed", 0)]

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": f"forbidden again {unique}"}]
        )
    assert caught.value.status_code == 400
    assert "the input is not allowed here" in str(caught.value)


def test_cancelled_background_run_ends_cancelled(client: openai.OpenAI, unique: str) -> None:
    response = client.responses.create(model="echo", input=f"hold {unique}", background=True)
    deadline = time.monotonic() + 15
    while RECORDER.seen.get(response.id, [])[-1:] != [("model_start", 0)]:  # the model holds
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.responses.cancel(response.id).status == "cancelled"
    assert RECORDER.run_with(unique) == [
        ("run_start", "responses"),
        ("model_start", 0),
        ("run_end", "cancelled", 0),
    ]


def test_run_stopped_at_run_end_is_ignored(client: openai.OpenAI, unique: str) -> None:
    response = client.responses.create(model="echo", input=f"too late {unique}")
    assert response.status == "completed" and response.error is None
    assert RECORDER.run_with(unique)[-1] == ("run_end", "completed", 1)
    assert client.responses.retrieve(response.id).status == "completed"
