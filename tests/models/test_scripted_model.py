"""``ScriptedModel`` is strict: a request no step fits raises a clear error, which a client
sees as a failed response (Responses) or a 400 (Chat Completions, Messages), never a 5xx;
and every call is recorded for tests to inspect."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from cupola.exceptions import ProviderError
from cupola.models.base import ChatMessage, ModelRequest, TextDelta
from cupola.models.resilience import ResilientModel, Target
from cupola.models.testing import ScriptedCall, ScriptedModel, ScriptedStep, ScriptMismatch
from cupola.settings import DeploymentConfig, ScriptStep
from live_server import LiveServer, make_settings, start_server

STEPS = [
    ScriptedStep(match=r"(?i)weather", tool_calls=(ScriptedCall("get_weather", {"city": "Oslo"}),)),
    ScriptedStep(match=r"(?i)thanks", reply="You are welcome."),
]


def request(*messages: tuple[str, str]) -> ModelRequest:
    return ModelRequest(messages=tuple(ChatMessage(role=r, content=c) for r, c in messages))


async def reply(model: ScriptedModel, req: ModelRequest) -> str:
    return "".join([e.text async for e in model.stream(req) if isinstance(e, TextDelta)])


async def test_a_request_no_step_fits_raises_and_is_recorded() -> None:
    model = ScriptedModel("strict", mode="script", script=STEPS)
    assert await reply(model, request(("user", "thanks!"))) == "You are welcome."
    with pytest.raises(ScriptMismatch) as info:
        await reply(model, request(("system", "be kind"), ("user", "Hello there")))
    error = info.value
    assert isinstance(error, ProviderError) and not error.retryable
    assert error.code == "script_mismatch" and error.status_code == 400
    assert "'strict'" in error.message and "'Hello there'" in error.message
    assert "'(?i)weather'" in error.message and "catch-all" in error.message

    assert [c.last_message for c in model.calls] == ["thanks!", "Hello there"]
    assert model.calls[0].step is STEPS[1] and model.calls[1].step is None
    assert model.calls[1].request.messages[0].content == "be kind"


async def test_a_step_without_match_is_the_catch_all_and_echo_never_raises() -> None:
    model = ScriptedModel("lenient", mode="script", script=[*STEPS, ScriptedStep(reply="Hm.")])
    assert await reply(model, request(("user", "Hello"))) == "Hm."
    echo = ScriptedModel("echo")
    assert await reply(echo, request(("user", "Hello"))) == "user: Hello"
    assert len(echo.calls) == 1 and echo.calls[0].step is None
    empty = ScriptedModel("empty", mode="script")
    with pytest.raises(ScriptMismatch, match="the script is empty"):
        await reply(empty, request(("user", "Hello")))


async def test_the_record_is_bounded() -> None:
    model = ScriptedModel("echo", keep_calls=2)
    for text in ("a", "b", "c"):
        await reply(model, request(("user", text)))
    assert [c.last_message for c in model.calls] == ["b", "c"]


async def test_a_mismatch_is_not_retried() -> None:
    inner = ScriptedModel("strict", mode="script", script=STEPS)
    wrapped = ResilientModel("strict", Target("strict", inner, retries=3, backoff=0.0))
    with pytest.raises(ScriptMismatch):
        [e async for e in wrapped.stream(request(("user", "Hello")))]
    assert len(inner.calls) == 1


@pytest.fixture(scope="module")
def strict_server(database_url: str) -> Iterator[LiveServer]:
    strict = DeploymentConfig(
        name="strict",
        provider="scripted",
        mode="script",
        script=[ScriptStep(match=r"(?i)thanks", reply="You are welcome.")],
    )
    settings = make_settings(database_url, deployments=[strict], default_deployment="strict")
    live = start_server(settings)
    yield live
    live.stop()


def test_a_mismatch_is_a_failed_response_or_a_400(strict_server: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=strict_server.openai_url, api_key="x", max_retries=0)
    ok = sdk.responses.create(model="strict", input="thanks!")
    assert ok.status == "completed" and ok.output_text == "You are welcome."

    failed = sdk.responses.create(model="strict", input="Hello")
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "script_mismatch" and "'Hello'" in failed.error.message
    stored = sdk.responses.retrieve(failed.id)
    assert stored.status == "failed"

    events = list(sdk.responses.create(model="strict", input="Hello", stream=True))
    assert events[-1].type == "response.failed"

    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="strict", messages=[{"role": "user", "content": "Hi"}])
    assert "no step for the last message 'Hi'" in str(info.value)

    claude = anthropic.Anthropic(
        base_url=f"{strict_server.url}/anthropic", api_key="x", max_retries=0
    )
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="strict", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        )

    # The deployment's model records what each request gave it, under its wrappers.
    resilient = strict_server.services.models.get("strict")
    assert isinstance(resilient, ResilientModel)
    scripted = resilient.primary.model  # no compat wrapper: the scripted model needs none
    assert isinstance(scripted, ScriptedModel)
    said = [c.last_message for c in scripted.calls]
    assert said == ["thanks!", "Hello", "Hello", "Hi", "Hi"]
