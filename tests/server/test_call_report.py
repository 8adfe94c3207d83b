"""What the model wrappers did is on the response: the ``cupola.*`` metadata keys, through the
``openai`` SDK against a live server whose deployments reach a flaky upstream on loopback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import live_server
from cupola.models.base import Adjustment, CallReport
from cupola.runtime.response import report_metadata
from cupola.settings import DeploymentConfig
from live_server import LiveServer, make_settings, start_server
from loopback import serve_app


class FlakyUpstream:
    """A Chat Completions server: the next ``fail_next`` requests get 429 (Retry-After: 1),
    then it streams ``Bonjour``; model ``always-500`` always fails."""

    def __init__(self) -> None:
        self.fail_next = 0
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.base_url = ""
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.bodies.append(body)
        self.times.append(time.monotonic())
        if body["model"] == "always-500":
            return Response(b'{"error": {"message": "boom"}}', 500)
        if self.fail_next:
            self.fail_next -= 1
            error = b'{"error": {"message": "Rate limit reached", "type": "rate_limit"}}'
            return Response(error, 429, {"Retry-After": "1"}, media_type="application/json")
        return StreamingResponse(self.sse(body["model"]), media_type="text/event-stream")

    @staticmethod
    async def sse(model: str) -> AsyncIterator[bytes]:
        def data(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": model}
            return b"data: " + orjson.dumps(chunk | {"choices": [choice]}) + b"\n\n"

        yield data({"role": "assistant", "content": "Bon"})
        yield data({"content": "jour"})
        yield data({}, "stop")
        yield b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FlakyUpstream]:
    fake = FlakyUpstream()
    with serve_app(fake.app, "flaky-upstream") as port:
        fake.base_url = f"http://127.0.0.1:{port}/v1"
        yield fake


@pytest.fixture(scope="module")
def live(database_url: str, upstream: FlakyUpstream) -> Iterator[LiveServer]:
    extra = [
        DeploymentConfig(
            name="gpt-5-flaky",
            provider="openai",
            model="flaky-upstream",
            base_url=upstream.base_url,
            retry_backoff=0.01,
        ),
        DeploymentConfig(
            name="o3-strict",
            provider="openai",
            base_url=upstream.base_url,
            unsupported_params="strict",
        ),
        DeploymentConfig(
            name="broken-primary",
            provider="openai",
            model="always-500",
            base_url=upstream.base_url,
            retries=0,
            fallbacks=["echo"],
        ),
        DeploymentConfig.model_validate(
            {
                "name": "auto-router",
                "provider": "router",
                "router": {
                    "policy": "complexity",
                    "routes": [
                        {"deployment": "echo", "tier": "simple"},
                        {"deployment": "weather-bot", "tier": "complex"},
                    ],
                },
            }
        ),
    ]
    server = start_server(
        make_settings(database_url, deployments=[*live_server.test_deployments(), *extra])
    )
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


REASONING_ADJUSTMENTS = [
    {"param": "temperature", "action": "dropped", "detail": "not supported by reasoning models"},
    {
        "param": "max_output_tokens",
        "action": "translated",
        "detail": "max_tokens 100 -> max_completion_tokens 4096",
    },
]


def test_retried_reasoning_call_reports_attempts_and_adjustments(
    client: openai.OpenAI, upstream: FlakyUpstream
) -> None:
    upstream.fail_next = 1
    sent_before = len(upstream.bodies)
    response = client.responses.create(
        model="gpt-5-flaky",
        input="Say hello in French.",
        temperature=0.2,
        max_output_tokens=100,
        metadata={"team": "qa"},
    )
    assert response.status == "completed" and response.output_text == "Bonjour"
    assert response.model == "gpt-5-flaky"
    metadata = response.metadata or {}
    assert metadata["team"] == "qa"
    assert metadata["cupola.deployment"] == "gpt-5-flaky"
    assert metadata["cupola.attempts"] == "2"
    assert json.loads(metadata["cupola.adjustments"]) == REASONING_ADJUSTMENTS
    assert "cupola.failed_over" not in metadata and "cupola.route" not in metadata

    first, second = upstream.bodies[sent_before:]
    assert upstream.times[-1] - upstream.times[-2] >= 0.95  # Retry-After: 1 was honoured
    assert second == first  # the same request, sent twice
    assert "temperature" not in second and second["max_completion_tokens"] == 4096

    stored = client.responses.retrieve(response.id)
    assert stored.metadata == metadata


def test_streamed_response_carries_the_report(
    client: openai.OpenAI, upstream: FlakyUpstream
) -> None:
    upstream.fail_next = 1
    events = list(client.responses.create(model="gpt-5-flaky", input="hi", stream=True))
    created = next(e for e in events if e.type == "response.created")
    completed = next(e for e in events if e.type == "response.completed")
    assert "cupola.attempts" not in (created.response.metadata or {})  # known at the end
    metadata = completed.response.metadata or {}
    assert metadata["cupola.attempts"] == "2"
    assert metadata["cupola.deployment"] == "gpt-5-flaky"
    assert "cupola.adjustments" not in metadata  # nothing to adjust in this request


def test_fallback_is_reported(client: openai.OpenAI) -> None:
    response = client.responses.create(model="broken-primary", input="hello")
    assert response.status == "completed" and response.model == "broken-primary"
    assert response.output_text == "user: hello"  # the echo deployment served
    metadata = response.metadata or {}
    assert metadata["cupola.deployment"] == "echo"
    assert metadata["cupola.attempts"] == "2"
    assert json.loads(metadata["cupola.failed_over"]) == ["broken-primary"]


def test_router_choice_is_reported(client: openai.OpenAI) -> None:
    response = client.responses.create(model="auto-router", input="hello")
    metadata = response.metadata or {}
    assert metadata["cupola.deployment"] == "echo"
    assert json.loads(metadata["cupola.route"]) == {
        "deployment": "echo",
        "reason": "complexity: simple (~2 tokens <= 1000, no tools, no json_schema)",
    }


def test_each_model_call_is_logged(
    client: openai.OpenAI, upstream: FlakyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cupola.models")
    upstream.fail_next = 1
    response = client.responses.create(model="gpt-5-flaky", input="hi", temperature=0.5)
    lines = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "cupola.models" and response.id in r.getMessage()
    ]
    assert len(lines) == 1
    line = lines[0]
    assert (line["event"], line["model"], line["finish_reason"]) == (
        "model_call",
        "gpt-5-flaky",
        "stop",
    )
    assert line["report"]["deployment"] == "gpt-5-flaky" and line["report"]["attempts"] == 2
    assert line["report"]["adjustments"][0]["param"] == "temperature"

    failed_over = client.responses.create(model="broken-primary", input="hi")  # echo serves
    logged = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "cupola.models" and failed_over.id in r.getMessage()
    ]
    assert [line["report"]["failed_over"] for line in logged] == [["broken-primary"]]

    plain = client.responses.create(model="echo", input="hi")  # nothing to report at INFO
    assert not [r for r in caplog.records if plain.id in r.getMessage()]
    caplog.set_level(logging.DEBUG, logger="cupola.models")
    debugged = client.responses.create(model="echo", input="hi")
    assert [r.levelname for r in caplog.records if debugged.id in r.getMessage()] == ["DEBUG"]


def test_plain_calls_leave_the_metadata_as_sent(
    client: openai.OpenAI, upstream: FlakyUpstream
) -> None:
    response = client.responses.create(model="echo", input="hi", metadata={"purpose": "test"})
    assert response.metadata == {"purpose": "test"}
    adjusted = client.responses.create(model="gpt-5-flaky", input="hi", top_p=0.5)
    assert adjusted.metadata == {
        "cupola.deployment": "gpt-5-flaky",
        "cupola.attempts": "1",
        "cupola.adjustments": '[{"param":"top_p","action":"dropped",'
        '"detail":"not supported by reasoning models"}]',
    }


def test_long_reports_fit_openai_metadata_limits() -> None:
    many = tuple(
        Adjustment(f"param_{i}", "dropped", "not supported by reasoning models") for i in range(9)
    )
    report = CallReport(
        deployment="b",
        attempts=3,
        failed_over=("a",),
        adjustments=many,
        route="b",
        route_reason="x" * 600,
    )
    metadata = report_metadata(report, "r")
    assert all(len(v) <= 512 for v in metadata.values())
    short = json.loads(metadata["cupola.adjustments"])  # details left out, still valid JSON
    assert short[0] == {"param": "param_0", "action": "dropped"} and len(short) == 9
    route = json.loads(metadata["cupola.route"])
    assert route["deployment"] == "b" and route["reason"].endswith("...")
    many = tuple(Adjustment(f"a_very_long_parameter_name_{i}", "dropped", "") for i in range(20))
    cut = json.loads(report_metadata(CallReport(adjustments=many), "r")["cupola.adjustments"])
    assert cut[-1] == f"+{20 - len(cut) + 1} more" and len(cut) > 5


def test_strict_deployment_refuses_the_request_naming_the_parameter(
    client: openai.OpenAI, upstream: FlakyUpstream
) -> None:
    sent_before = len(upstream.bodies)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="o3-strict", input="hi", temperature=0.7)
    assert refused.value.status_code == 400
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("unsupported_parameter", "temperature")
    assert error["message"].startswith("Unsupported parameter: 'temperature'")
    with pytest.raises(openai.BadRequestError):  # Chat Completions refuses it the same way
        client.chat.completions.create(
            model="o3-strict", messages=[{"role": "user", "content": "hi"}], stop=["END"]
        )
    assert len(upstream.bodies) == sent_before  # nothing was sent upstream
    assert client.responses.create(model="o3-strict", input="hi").status == "completed"
