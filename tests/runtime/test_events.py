"""The run's typed events and outcome, through the response service in process: what a
streamed run yields (and in which order), that a run that does not stream yields only its
outcome, and that the outcome says how the run ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cupola.exceptions import ErrorInfo, NotFound, ProviderError, UserError, classify
from cupola.runtime.events import (
    ArgumentsDelta,
    ArgumentsDone,
    ItemAdded,
    ItemDone,
    RunEvent,
    RunOutcome,
    StatusChanged,
    TextDelta,
    TextDone,
)
from cupola.runtime.request import CreateResponse
from cupola.server.app import build_services
from cupola.server.services import Services
from cupola.settings import DeploymentConfig, ScriptStep
from live_server import make_settings

CALLER = DeploymentConfig(
    name="caller",
    provider="scripted",
    mode="script",
    script=[ScriptStep(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])],
)
LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url)
    settings.deployments.append(CALLER)
    s = build_services(settings)
    await s.store.open()
    yield s
    await s.runner.aclose()
    await s.tools.aclose()
    await s.models.aclose()
    await s.store.close()


def request(**fields: Any) -> CreateResponse:
    return CreateResponse.model_validate({"model": "echo", "input": "hello there", **fields})


async def collect(events: AsyncIterator[RunEvent | RunOutcome]) -> list[RunEvent | RunOutcome]:
    return [event async for event in events]


async def test_a_streamed_message_yields_its_events_in_order(services: Services) -> None:
    events = await collect(await services.responses.stream("default", request(stream=True)))
    kinds = [type(e) for e in events]
    assert kinds[:3] == [StatusChanged, StatusChanged, ItemAdded]
    assert kinds[-4:] == [TextDelta, TextDone, ItemDone, RunOutcome]
    created, running = events[0], events[1]
    assert isinstance(created, StatusChanged) and isinstance(running, StatusChanged)
    assert (created.kind, created.response["status"]) == ("created", "in_progress")
    assert (running.kind, running.response["status"]) == ("in_progress", "in_progress")
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    done = next(e for e in events if isinstance(e, TextDone))
    assert done.text == text and "hello there" in text
    outcome = events[-1]
    assert isinstance(outcome, RunOutcome)
    assert outcome.status == "completed" and outcome.texts() == [text]
    assert outcome.response is not None and outcome.response["output"] == outcome.output
    assert len(outcome.reports) == 1 and outcome.usage.output_tokens > 0


async def test_a_run_that_does_not_stream_builds_no_event(services: Services) -> None:
    prepared = await services.runner.prepare("default", request())
    events = await collect(services.runner.run(prepared))
    assert len(events) == 1 and isinstance(events[0], RunOutcome)
    assert events[0].status == "completed"


async def test_a_function_call_streams_its_arguments(services: Services) -> None:
    req = request(model="caller", tools=[LOOKUP], stream=True, store=False)
    events = await collect(await services.responses.stream("default", req))
    added = next(e for e in events if isinstance(e, ItemAdded))
    assert added.item["type"] == "function_call" and added.item["status"] == "in_progress"
    pieces = "".join(e.delta for e in events if isinstance(e, ArgumentsDelta))
    done = next(e for e in events if isinstance(e, ArgumentsDone))
    assert done.arguments == pieces == '{"q":"x"}'
    outcome = events[-1]
    assert isinstance(outcome, RunOutcome)
    assert [c.name for c in outcome.calls()] == ["lookup"]


async def test_a_background_stream_starts_queued(services: Services) -> None:
    req = request(stream=True, background=True)
    events = await collect(await services.responses.stream("default", req))
    created = events[0]
    assert isinstance(created, StatusChanged) and created.response["status"] == "queued"
    outcome = events[-1]
    assert isinstance(outcome, RunOutcome) and outcome.status == "completed"
    stored = await services.store.get_response("default", created.response["id"])
    assert stored.body["status"] == "completed"


async def test_a_background_create_answers_queued(services: Services) -> None:
    body = await services.responses.create("default", request(background=True))
    assert body["status"] == "queued"


async def test_a_failed_model_fails_the_outcome(services: Services) -> None:
    req = request(model="unreachable", stream=True)
    events = await collect(await services.responses.stream("default", req))
    outcome = events[-1]
    assert isinstance(outcome, RunOutcome) and outcome.status == "failed"
    assert outcome.error is not None and outcome.error.type == "model_error"
    assert outcome.response is not None
    assert outcome.response["status"] == "failed"
    assert outcome.response["error"]["code"] == (outcome.error.code or "model_error")


async def test_a_stateless_run_ends_in_an_outcome(services: Services) -> None:
    run = await services.responses.stateless(
        "default", request(store=False), None, "chat.completions"
    )
    outcome = await run.run()
    assert outcome.status == "completed" and outcome.response is None
    assert run.report(outcome).attempts == 1


def test_the_classifier() -> None:
    assert classify(NotFound("no such thing", param="id")) == ErrorInfo(
        404, "invalid_request_error", None, "no such thing", "id"
    )
    provider = classify(ProviderError("upstream down", code="upstream"))
    assert (provider.status, provider.type, provider.code) == (502, "model_error", "upstream")
    assert classify(UserError("bad")).expected
    bug = classify(KeyError("secret detail"))
    assert bug.status == 500 and not bug.expected
    assert "secret" not in bug.message  # never the exception's own text
