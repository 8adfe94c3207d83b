"""The model-router (models/router.py): one route per request, by cost, latency or complexity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cupola.exceptions import ConfigError, ProviderError, UserError
from cupola.models.base import (
    ChatMessage,
    Finish,
    FunctionSpec,
    Model,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    complete,
)
from cupola.models.registry import ModelRegistry
from cupola.models.router import RouterModel, estimate_tokens
from cupola.models.testing import ScriptedModel
from cupola.settings import DeploymentConfig, RouterConfig, Settings


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=(ChatMessage("user", text),), **kwargs)


def router(policy: str, routes: list[dict[str, Any]], **kwargs: Any) -> RouterModel:
    config = RouterConfig.model_validate({"policy": policy, "routes": routes, **kwargs})
    models = {r["deployment"]: ScriptedModel(r["deployment"]) for r in routes}
    return RouterModel("smart", config, models.__getitem__)


def test_estimate_is_a_quarter_of_the_characters() -> None:
    assert estimate_tokens(ask("")) == 0
    assert estimate_tokens(ask("abcd")) == 1
    assert estimate_tokens(ask("abcde")) == 2
    calls = (ToolCall("c1", "get", '{"a":1}'),)
    request = ModelRequest(
        messages=(ChatMessage("system", "x" * 8), ChatMessage("assistant", "", tool_calls=calls)),
        tools=(FunctionSpec("get", "d", {"type": "object"}),),
    )
    # 8 + len("get") + 7 + len("get") + len("d") + len('{"type":"object"}')
    assert estimate_tokens(request) == -(-(8 + 3 + 7 + 3 + 1 + 17) // 4)


# -- cost -------------------------------------------------------------------------------------

COST_ROUTES = [
    {"deployment": "big", "cost_per_1k_tokens": 2.0},
    {"deployment": "mid", "cost_per_1k_tokens": 0.5, "max_prompt_tokens": 1000},
    {"deployment": "small", "cost_per_1k_tokens": 0.1, "max_prompt_tokens": 50},
]


@pytest.mark.parametrize(
    ("chars", "expected"),
    [(20, "small"), (200, "small"), (204, "mid"), (4000, "mid"), (4004, "big"), (90_000, "big")],
)
def test_cost_picks_the_cheapest_route_that_fits(chars: int, expected: str) -> None:
    route, reason = router("cost", COST_ROUTES).choose(ask("x" * chars))
    assert route.deployment == expected
    assert reason.startswith("cost: cheapest route (")
    assert f"fits the prompt (~{-(-chars // 4)} tokens)" in reason


def test_cost_ties_go_to_the_first_listed() -> None:
    routes = [
        {"deployment": "a", "cost_per_1k_tokens": 1.0},
        {"deployment": "b", "cost_per_1k_tokens": 1.0},
    ]
    assert router("cost", routes).choose(ask("hi"))[0].deployment == "a"


def test_cost_rejects_a_prompt_no_route_takes() -> None:
    routes = [{"deployment": "tiny", "max_prompt_tokens": 10}]
    with pytest.raises(UserError) as caught:
        router("cost", routes).choose(ask("x" * 100))
    assert caught.value.status_code == 400 and caught.value.code == "context_length_exceeded"
    assert "about 25 tokens" in caught.value.message and "at most 10" in caught.value.message


# -- complexity -------------------------------------------------------------------------------

TIERED = [
    {"deployment": "mini", "tier": "simple"},
    {"deployment": "thinker", "tier": "complex"},
    {"deployment": "general", "tier": "any"},
]
SCHEMA = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
TOOL = FunctionSpec("lookup")


@pytest.mark.parametrize(
    ("request_", "expected", "why"),
    [
        (ask("hi"), "mini", "complexity: simple (~1 tokens <= 20, no tools, no json_schema)"),
        (ask("x" * 84), "thinker", "complexity: complex (~21 tokens > 20)"),
        (ask("hi", tools=(TOOL,)), "thinker", "complexity: complex (has tools)"),
        (ask("hi", response_format=SCHEMA), "thinker", "complexity: complex (json_schema output)"),
        (ask("hi", response_format={"type": "json_object"}), "mini", None),
    ],
)
def test_complexity(request_: ModelRequest, expected: str, why: str | None) -> None:
    route, reason = router("complexity", TIERED, complexity_threshold_tokens=20).choose(request_)
    assert route.deployment == expected
    if why is not None:
        assert reason == why


def test_complexity_any_routes_and_missing_tiers() -> None:
    only_any = [{"deployment": "mini", "tier": "simple"}, {"deployment": "general"}]
    model = router("complexity", only_any)
    assert model.choose(ask("hi", tools=(TOOL,)))[0].deployment == "general"
    no_complex = [{"deployment": "mini", "tier": "simple"}, {"deployment": "m2", "tier": "simple"}]
    route, reason = router("complexity", no_complex).choose(ask("hi", tools=(TOOL,)))
    assert route.deployment == "mini"
    assert reason.endswith("no complex route, first route")


# -- latency ----------------------------------------------------------------------------------


class Timed(Model):
    """Takes ``seconds`` of a fake clock per call, or fails."""

    def __init__(self, name: str, clock: list[float], seconds: float, fail: bool = False):
        self.name = name
        self.clock = clock
        self.seconds = seconds
        self.fail = fail
        self.calls = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.calls += 1
        self.clock[0] += self.seconds
        if self.fail:
            raise ProviderError(f"{self.name} is down")
        yield TextDelta(self.name)
        yield Finish("stop")


async def test_latency_tries_each_route_then_prefers_the_fastest() -> None:
    clock = [0.0]
    models = {
        "a": Timed("a", clock, 0.5),
        "b": Timed("b", clock, 0.2),
        "c": Timed("c", clock, 0.2),
    }
    config = RouterConfig.model_validate(
        {"policy": "latency", "routes": [{"deployment": n} for n in "abc"]}
    )
    model = RouterModel("fast", config, models.__getitem__, clock=lambda: clock[0])
    served = []
    for _ in range(5):
        result = await complete(model, ask("hi"))
        served.append((result.text, result.finish.report.route_reason))
    assert [s[0] for s in served] == ["a", "b", "c", "b", "b"]  # b and c tie: b, listed first
    assert served[0][1] == "latency: not tried yet"
    assert served[3][1] == "latency: lowest moving-average latency (200 ms)"
    models["b"].seconds = 2.0  # b slows down: its average rises past c's
    await complete(model, ask("hi"))
    assert model.latency["b"] == pytest.approx(0.3 * 2.0 + 0.7 * 0.2)
    assert (await complete(model, ask("hi"))).text == "c"


async def test_latency_counts_a_failure_as_the_route_timeout() -> None:
    clock = [0.0]
    models = {"flaky": Timed("flaky", clock, 0.01, fail=True), "steady": Timed("s", clock, 1.0)}
    config = RouterConfig.model_validate(
        {"policy": "latency", "routes": [{"deployment": "flaky"}, {"deployment": "steady"}]}
    )
    model = RouterModel(
        "r", config, models.__getitem__, failure_seconds={"flaky": 60.0}, clock=lambda: clock[0]
    )
    with pytest.raises(ProviderError):
        await complete(model, ask("hi"))
    assert model.latency["flaky"] == 60.0
    await complete(model, ask("hi"))  # steady, untried
    assert (await complete(model, ask("hi"))).finish.report.route == "steady"


# -- through the registry ---------------------------------------------------------------------


def settings(*deployments: dict[str, Any]) -> Settings:
    return Settings(deployments=[DeploymentConfig.model_validate(d) for d in deployments])


SCRIPTED = [
    {"name": "mini", "provider": "scripted", "mode": "script", "script": [{"reply": "mini"}]},
    {"name": "thinker", "provider": "scripted", "mode": "script", "script": [{"reply": "deep"}]},
]


async def test_router_deployment_reports_its_choice() -> None:
    routes = [
        {"deployment": "mini", "tier": "simple"},
        {"deployment": "thinker", "tier": "complex"},
    ]
    registry = ModelRegistry(
        settings(
            *SCRIPTED,
            {
                "name": "auto",
                "provider": "router",
                "router": {"policy": "complexity", "routes": routes},
            },
        )
    )
    try:
        model = registry.get("auto")
        assert model.name == "auto"
        simple = await complete(model, ask("hi"))
        assert simple.text == "mini"
        report = simple.finish.report
        assert (report.route, report.deployment, report.attempts) == ("mini", "mini", 1)
        assert report.as_dict()["route"] == {
            "deployment": "mini",
            "reason": "complexity: simple (~1 tokens <= 1000, no tools, no json_schema)",
        }
        complex_ = await complete(model, ask("hi", response_format=SCHEMA))
        assert complex_.text == "deep" and complex_.finish.report.route == "thinker"
    finally:
        await registry.aclose()


async def test_router_fallbacks_serve_when_the_route_fails() -> None:
    down = {
        "name": "down",
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",  # the discard port: connection refused
        "retries": 0,
    }
    registry = ModelRegistry(
        settings(
            *SCRIPTED,
            down,
            {
                "name": "auto",
                "provider": "router",
                "router": {"policy": "cost", "routes": [{"deployment": "down"}]},
                "fallbacks": ["mini"],
            },
        )
    )
    try:
        result = await complete(registry.get("auto"), ask("hi"))
        report = result.finish.report
        assert (report.deployment, report.failed_over, report.attempts) == ("mini", ("auto",), 2)
    finally:
        await registry.aclose()


def test_a_loop_through_a_router_is_refused() -> None:
    registry = ModelRegistry(
        settings(
            {"name": "a", "provider": "scripted", "fallbacks": ["r"]},
            {"name": "r", "provider": "router", "router": {"routes": [{"deployment": "a"}]}},
        )
    )
    with pytest.raises(ConfigError, match=r"deployment 'a' is part of a loop: a -> r -> a"):
        registry.get("a")
    with pytest.raises(ConfigError, match=r"loop: r -> a -> r"):
        registry.get("r")


def test_fallbacks_of_fallbacks_are_no_loop() -> None:
    registry = ModelRegistry(
        settings(
            {"name": "a", "provider": "scripted", "fallbacks": ["b"]},
            {"name": "b", "provider": "scripted", "fallbacks": ["a"]},
        )
    )
    assert registry.get("a").name == "a" and registry.get("b").name == "b"
