"""Retries, fallbacks, timeouts and the circuit breaker (models/resilience.py), by fault
injection against a real Chat Completions server on loopback, used through the registry and
the real ``openai`` adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fake_chat_upstream import Chunk, FakeChatUpstream, Received, Reply, chunk, text_chunks
from starlette.requests import Request
from starlette.responses import Response

from cupola.exceptions import ProviderError, UserError
from cupola.models.base import (
    ChatMessage,
    Finish,
    Model,
    ModelEvent,
    ModelRequest,
    TextDelta,
    complete,
)
from cupola.models.registry import ModelRegistry
from cupola.models.resilience import CircuitBreaker, ResilientModel, Target
from cupola.models.testing import ScriptedModel
from cupola.settings import DeploymentConfig, Settings
from loopback import serve_app

HELLO = ModelRequest(messages=(ChatMessage("user", "hello"),))


@dataclass
class Fail:
    """An error answer with headers (Retry-After)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "injected failure"


class FaultyUpstream(FakeChatUpstream):
    """The fake Chat Completions server, plus a queue of answers per model: each request
    takes the next one (a :class:`Fail` or a :class:`Reply`); an empty queue answers as the
    base fake does (the registered reply, else an echo)."""

    def __init__(self) -> None:
        super().__init__()
        self.queues: dict[str, list[Fail | Reply]] = {}
        self.times: dict[str, list[float]] = {}

    def script(self, model: str, *answers: Fail | Reply) -> None:
        self.queues[model] = list(answers)

    def count(self, model: str) -> int:
        return len(self.received(model))

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        model = orjson.loads(raw).get("model", "")
        self.times.setdefault(model, []).append(time.monotonic())
        queue = self.queues.get(model)
        answer = queue.pop(0) if queue else None
        if isinstance(answer, Fail):
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append(Received(orjson.loads(raw), headers))
            error = {"error": {"message": answer.message, "type": "server_error"}}
            return Response(
                orjson.dumps(error), answer.status, answer.headers, media_type="application/json"
            )
        if answer is None:
            return await super()._chat(request)
        registered = self._replies.get(model)
        self._replies[model] = answer  # read by the base class before its first pause
        try:
            return await super()._chat(request)
        finally:
            if registered is None:
                del self._replies[model]
            else:
                self._replies[model] = registered


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    fake = FaultyUpstream()
    with serve_app(fake.app, "faulty-upstream") as port:
        fake.base_url = f"http://127.0.0.1:{port}/v1"
        yield fake


def openai_dep(name: str, upstream: FaultyUpstream, **kwargs: Any) -> dict[str, Any]:
    """A deployment whose upstream model is named like the deployment."""
    data = {
        "name": name,
        "provider": "openai",
        "model": name,
        "base_url": upstream.base_url,
        "retry_backoff": 0.01,
        "timeout": 5,
    }
    return data | kwargs


@pytest.fixture
async def registry_of() -> AsyncIterator[Any]:
    made: list[ModelRegistry] = []

    def make(*deployments: dict[str, Any]) -> ModelRegistry:
        settings = Settings(deployments=[DeploymentConfig.model_validate(d) for d in deployments])
        made.append(ModelRegistry(settings))
        return made[-1]

    yield make
    for registry in made:
        await registry.aclose()


# -- retries --------------------------------------------------------------------------------


async def test_429_retry_after_is_honoured(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.script("r429", Fail(429, {"Retry-After": "1"}, "rate limited"))
    registry = registry_of(openai_dep("r429", upstream, retry_backoff=0))
    result = await complete(registry.get("r429"), HELLO)
    assert result.text == "echo: hello"
    assert upstream.count("r429") == 2
    first, second = upstream.times["r429"]
    assert second - first >= 0.95  # waited the second it was asked to (backoff alone is 0)
    report = result.finish.report
    assert (report.deployment, report.attempts, report.failed_over) == ("r429", 2, ())


async def test_retry_after_ms_is_honoured(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.script("r429ms", Fail(429, {"retry-after-ms": "300"}))
    registry = registry_of(openai_dep("r429ms", upstream, retry_backoff=0))
    await complete(registry.get("r429ms"), HELLO)
    first, second = upstream.times["r429ms"]
    assert second - first >= 0.28
    assert upstream.count("r429ms") == 2


async def test_500_then_success(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.script("r500", Fail(500), Fail(503))
    registry = registry_of(openai_dep("r500", upstream))
    result = await complete(registry.get("r500"), HELLO)
    assert result.text == "echo: hello"
    assert upstream.count("r500") == 3
    assert result.finish.report.attempts == 3


async def test_malformed_body_is_retried(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.script("rbad", Reply(['{"choices": [ not json']))
    registry = registry_of(openai_dep("rbad", upstream))
    result = await complete(registry.get("rbad"), HELLO)
    assert result.text == "echo: hello"
    assert upstream.count("rbad") == 2


async def test_stream_dropped_before_content_is_retried(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    role_only: list[Chunk] = [chunk("rdrop", {"role": "assistant", "content": ""})]
    upstream.script("rdrop", Reply(role_only, done=False, drop=True))
    registry = registry_of(openai_dep("rdrop", upstream))
    result = await complete(registry.get("rdrop"), HELLO)
    assert result.text == "echo: hello"
    assert upstream.count("rdrop") == 2


async def test_stream_dropped_after_content_is_a_clear_error(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    half = [chunk("rhalf", {"content": "half a "}), chunk("rhalf", {"content": "reply"})]
    upstream.script("rhalf", Reply(half, done=False, drop=True))
    registry = registry_of(
        openai_dep("rhalf", upstream, fallbacks=["rhalf-backup"]),
        openai_dep("rhalf-backup", upstream),
    )
    events: list[ModelEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in registry.get("rhalf").stream(HELLO):
            events.append(event)
    assert events == [TextDelta("half a "), TextDelta("reply")]
    assert "'rhalf' failed after its reply had started, so it was not retried" in str(caught.value)
    assert upstream.count("rhalf") == 1  # not retried although retries is 2
    assert upstream.count("rhalf-backup") == 0  # and not sent to the fallback


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_never_more_than_one_plus_retries(
    upstream: FaultyUpstream, registry_of: Any, retries: int
) -> None:
    name = f"rcount{retries}"
    upstream.reply(name, Reply(status=503))
    registry = registry_of(openai_dep(name, upstream, retries=retries))
    with pytest.raises(ProviderError) as caught:
        await complete(registry.get(name), HELLO)
    assert upstream.count(name) == 1 + retries
    assert f"deployment {name!r}" in caught.value.message
    assert caught.value.upstream_status == 503
    if retries:
        assert caught.value.message.endswith(f"(after {1 + retries} attempts)")


# -- fallbacks -------------------------------------------------------------------------------


async def test_retries_exhausted_then_fallback_serves(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    upstream.reply("fprimary", Reply(status=503))
    registry = registry_of(
        openai_dep("fprimary", upstream, retries=1, fallbacks=["fbackup"]),
        openai_dep("fbackup", upstream),
    )
    model = registry.get("fprimary")
    assert model.name == "fprimary"
    result = await complete(model, HELLO)
    assert result.text == "echo: hello"
    report = result.finish.report
    assert (report.deployment, report.attempts, report.failed_over) == ("fbackup", 3, ("fprimary",))
    assert (upstream.count("fprimary"), upstream.count("fbackup")) == (2, 1)


async def test_hang_times_out_then_fallback(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.reply("fhang", Reply(text_chunks(["late"]), delay=3.0))
    registry = registry_of(
        openai_dep("fhang", upstream, retries=0, timeout=0.3, fallbacks=["fquick"]),
        openai_dep("fquick", upstream),
    )
    started = time.monotonic()
    result = await complete(registry.get("fhang"), HELLO)
    assert time.monotonic() - started < 2.0
    assert result.text == "echo: hello"
    assert result.finish.report.deployment == "fquick"
    assert result.finish.report.failed_over == ("fhang",)


async def test_retry_after_beyond_the_cap_goes_to_the_fallback(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    upstream.reply("fslow429", Reply(status=429))
    upstream.script("fslow429", Fail(429, {"Retry-After": "120"}))
    registry = registry_of(
        openai_dep("fslow429", upstream, max_retry_wait=5, fallbacks=["fnext"]),
        openai_dep("fnext", upstream),
    )
    started = time.monotonic()
    result = await complete(registry.get("fslow429"), HELLO)
    assert time.monotonic() - started < 2.0
    assert result.finish.report.deployment == "fnext"
    assert upstream.count("fslow429") == 1


async def test_misconfigured_deployment_is_not_retried_but_falls_back(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    upstream.reply("f401", Reply(status=401))
    registry = registry_of(
        openai_dep("f401", upstream, fallbacks=["f401-backup"]),
        openai_dep("f401-backup", upstream),
    )
    result = await complete(registry.get("f401"), HELLO)
    assert result.finish.report.deployment == "f401-backup"
    assert upstream.count("f401") == 1


async def test_bad_request_ends_the_call(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.reply("f400", Reply(status=400, error={"error": {"message": "bad 'stop' value"}}))
    registry = registry_of(
        openai_dep("f400", upstream, fallbacks=["f400-backup"]),
        openai_dep("f400-backup", upstream),
    )
    with pytest.raises(ProviderError, match="bad 'stop' value") as caught:
        await complete(registry.get("f400"), HELLO)
    assert caught.value.upstream_status == 400
    assert (upstream.count("f400"), upstream.count("f400-backup")) == (1, 0)


async def test_all_failing_is_one_clear_error(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.reply("fall-a", Reply(status=500))
    upstream.reply("fall-b", Reply(status=502))
    registry = registry_of(
        openai_dep("fall-a", upstream, retries=1, fallbacks=["fall-b"]),
        openai_dep("fall-b", upstream, retries=2),
    )
    with pytest.raises(ProviderError) as caught:
        await complete(registry.get("fall-a"), HELLO)
    message = caught.value.message
    assert message.startswith("deployment 'fall-a' and its fallbacks failed (5 attempts in all)")
    assert "'fall-a': deployment 'fall-a': " in message and "HTTP 500" in message
    assert "'fall-b': deployment 'fall-b': " in message and "HTTP 502" in message
    assert (upstream.count("fall-a"), upstream.count("fall-b")) == (2, 3)


async def test_fallbacks_use_their_own_compat(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.reply("gpt-4o-main", Reply(status=500))
    registry = registry_of(
        openai_dep("gpt-4o-main", upstream, retries=0, fallbacks=["gpt-5-spare"]),
        openai_dep("gpt-5-spare", upstream),
    )
    request = ModelRequest(messages=HELLO.messages, temperature=0.3, max_output_tokens=10)
    result = await complete(registry.get("gpt-4o-main"), request)
    assert upstream.last("gpt-4o-main").body["temperature"] == 0.3
    spare = upstream.last("gpt-5-spare").body
    assert "temperature" not in spare and spare["max_completion_tokens"] == 4096
    assert [a.param for a in result.finish.report.adjustments] == [
        "temperature",
        "max_output_tokens",
    ]


async def test_strict_compat_errors_are_not_retried(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    registry = registry_of(
        openai_dep("o3-strict", upstream, unsupported_params="strict", fallbacks=["o3-other"]),
        openai_dep("o3-other", upstream),
    )
    with pytest.raises(UserError, match="'temperature'"):
        await complete(registry.get("o3-strict"), ModelRequest(HELLO.messages, temperature=0.5))
    assert upstream.count("o3-strict") == upstream.count("o3-other") == 0


# -- circuit breaker -----------------------------------------------------------------------


async def test_circuit_opens_and_half_opens(upstream: FaultyUpstream, registry_of: Any) -> None:
    upstream.reply("cb", Reply(status=500))
    breaker = {"failures": 2, "reset_seconds": 0.5}
    registry = registry_of(openai_dep("cb", upstream, retries=0, circuit_breaker=breaker))
    model = registry.get("cb")
    for _ in range(2):
        with pytest.raises(ProviderError, match="HTTP 500"):
            await complete(model, HELLO)
    assert upstream.count("cb") == 2
    with pytest.raises(ProviderError) as caught:
        await complete(model, HELLO)
    assert caught.value.message == "deployment 'cb' is unavailable (circuit open after 2 failures)"
    assert upstream.count("cb") == 2  # nothing sent while open

    await asyncio.sleep(0.55)
    with pytest.raises(ProviderError, match="HTTP 500"):  # the probe fails: open again
        await complete(model, HELLO)
    assert upstream.count("cb") == 3
    with pytest.raises(ProviderError, match="circuit open"):
        await complete(model, HELLO)
    assert upstream.count("cb") == 3

    await asyncio.sleep(0.55)
    upstream.reply("cb", Reply(text_chunks(["back"])))
    assert (await complete(model, HELLO)).text == "back"  # the probe succeeds: closed
    assert (await complete(model, HELLO)).text == "back"
    assert upstream.count("cb") == 5


async def test_open_circuit_goes_straight_to_fallbacks(
    upstream: FaultyUpstream, registry_of: Any
) -> None:
    upstream.reply("cbf", Reply(status=503))
    breaker = {"failures": 2, "reset_seconds": 60}
    registry = registry_of(
        openai_dep("cbf", upstream, retries=3, circuit_breaker=breaker, fallbacks=["cbf-b"]),
        openai_dep("cbf-b", upstream),
    )
    model = registry.get("cbf")
    first = await complete(model, HELLO)
    assert upstream.count("cbf") == 2  # the circuit opened after 2 of the 4 allowed attempts
    assert first.finish.report.deployment == "cbf-b"
    second = await complete(model, HELLO)
    assert upstream.count("cbf") == 2
    assert second.finish.report.failed_over == ("cbf",)
    assert second.finish.report.attempts == 1


def test_breaker_states() -> None:
    now = [100.0]
    breaker = CircuitBreaker("x", failures=3, reset_seconds=10, clock=lambda: now[0])
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # consecutive failures only
    breaker.failed()
    breaker.failed()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    now[0] += 10
    assert breaker.state == "half_open"
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # and only one
    breaker.release()  # the probe was cancelled: another may probe
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.failures == 0


# -- the wrapper on its own --------------------------------------------------------------


class Hanging(Model):
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.calls += 1
        await asyncio.sleep(30)
        yield Finish("stop")


async def test_timeout_bounds_time_to_first_event() -> None:
    hanging = Hanging("slow")
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    model = ResilientModel(
        "slow",
        Target("slow", hanging, retries=1, backoff=0.5, timeout=0.1),
        ["fast"],
        resolve=lambda name: Target(name, ScriptedModel(name)),
        sleep=no_sleep,
        jitter=lambda: 1.0,
    )
    started = time.monotonic()
    result = await complete(model, HELLO)
    assert time.monotonic() - started < 1.0
    assert hanging.calls == 2 and sleeps == [0.5]
    assert result.text == "user: hello"
    report = result.finish.report
    assert (report.deployment, report.attempts, report.failed_over) == ("fast", 3, ("slow",))


async def test_fallback_targets_are_resolved_only_when_needed() -> None:
    resolved: list[str] = []

    def resolve(name: str) -> Target:
        resolved.append(name)
        return Target(name, ScriptedModel(name))

    model = ResilientModel("a", Target("a", ScriptedModel("a")), ["b", "c"], resolve=resolve)
    result = await complete(model, HELLO)
    assert result.finish.report.deployment == "a" and resolved == []


class Failing(Model):
    def __init__(self, name: str, status: int = 500, retry_after: float | None = None) -> None:
        self.name = name
        self.status = status
        self.retry_after = retry_after
        self.calls = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.calls += 1
        raise ProviderError(
            f"{self.name} failed", upstream_status=self.status, retry_after=self.retry_after
        )
        yield Finish("stop")  # pragma: no cover - makes this an async generator


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [(0.0, [0.1, 0.2, 0.3]), (1.0, [0.2, 0.3, 0.3])],
    ids=["least-jitter", "most-jitter"],
)
async def test_backoff_doubles_with_jitter_and_is_capped(
    jitter: float, expected: list[float]
) -> None:
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    failing = Failing("x")
    target = Target("x", failing, retries=3, backoff=0.2, max_retry_wait=0.3)
    model = ResilientModel("x", target, sleep=record, jitter=lambda: jitter)
    with pytest.raises(ProviderError, match=r"x failed \(after 4 attempts\)"):
        await complete(model, HELLO)
    assert failing.calls == 4
    assert sleeps == pytest.approx(expected)


async def test_retry_after_replaces_the_backoff() -> None:
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    failing = Failing("x", status=429, retry_after=2.5)
    model = ResilientModel("x", Target("x", failing, retries=2, backoff=0.01), sleep=record)
    with pytest.raises(ProviderError):
        await complete(model, HELLO)
    assert sleeps == [2.5, 2.5] and failing.calls == 3
