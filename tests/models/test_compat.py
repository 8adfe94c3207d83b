"""Model-family compatibility (models/compat.py): the GPT-5 migration post's table, case by case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fake_chat_upstream
import pytest
from fake_chat_upstream import FakeChatUpstream

from cupola.exceptions import UserError
from cupola.models.base import Adjustment, ChatMessage, ModelRequest, complete
from cupola.models.compat import (
    SAMPLING_PARAMS,
    CompatModel,
    deployment_family,
    model_family,
)
from cupola.models.registry import ModelRegistry
from cupola.models.testing import ScriptedModel
from cupola.settings import DeploymentConfig, Settings

fake_upstream = fake_chat_upstream.fake_upstream  # the shared fixture, session-scoped

HELLO = (ChatMessage("user", "hello"),)
SET_VALUES: dict[str, Any] = {
    "temperature": 0.2,
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "logprobs": True,
    "top_logprobs": 3,
    "logit_bias": {"50256": -100.0},
    "stop": ("\nSQLResult:",),
}


def wrap(family: str, **kwargs: Any) -> CompatModel:
    return CompatModel(ScriptedModel("dep"), family=family, **kwargs)  # type: ignore[arg-type]


# -- family detection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the post's test list
        ("gpt-5.1", "reasoning"),
        ("gpt5", "reasoning"),
        ("gpt-5-prod-eu", "reasoning"),
        ("o3-mini", "reasoning"),
        ("o1", "reasoning"),
        ("gpt-4o", "legacy"),
        ("gpt-4", "legacy"),
        ("gpt-4-32k", "legacy"),
        ("gpt-35-turbo", "legacy"),
        ("", "legacy"),
        (None, "legacy"),
        # the post's other examples and spellings its patterns cover
        ("gpt-5", "reasoning"),
        ("GPT-5.1", "reasoning"),
        ("gpt_5", "reasoning"),
        ("GPT 5", "reasoning"),
        ("gpt5mini-prod-eu", "reasoning"),
        ("o3", "reasoning"),
        ("o4-mini", "reasoning"),
        ("o1-preview", "reasoning"),
        ("azure-o3-prod", "reasoning"),
        ("gpt-3.5-turbo", "legacy"),
        ("gpt-4o-mini", "legacy"),
        ("gpt-4.1", "legacy"),
        ("gpt-50", "legacy"),
        ("o10", "legacy"),
        ("prod-default", "legacy"),
        ("  ", "legacy"),
    ],
)
def test_family_from_name(name: str | None, expected: str) -> None:
    assert model_family(name) == expected


@pytest.mark.parametrize(
    ("name", "override", "expected"),
    [
        ("prod-default", "reasoning", "reasoning"),
        ("gpt-5.1", "legacy", "legacy"),
        ("gpt-5.1", "auto", "reasoning"),
        ("gpt-4o", None, "legacy"),
        ("prod-default", "o-series", "reasoning"),
        ("gpt-5.1", "GPT-4", "legacy"),
        (None, "reasoning", "reasoning"),
    ],
)
def test_family_override(name: str | None, override: str | None, expected: str) -> None:
    assert model_family(name, override) == expected


def dep(**kwargs: Any) -> DeploymentConfig:
    data = {"name": "dep", "provider": "openai", **kwargs}
    return DeploymentConfig.model_validate(data)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (dep(name="gpt-5-prod-eu"), "reasoning"),
        (dep(name="prod-default", model="gpt-5.1"), "reasoning"),  # the upstream model decides
        (dep(name="gpt5-eu", model="my-finetune"), "reasoning"),  # unknown model: the name
        (dep(name="gpt-5-canary", model="gpt-4o"), "legacy"),  # the model name comes first
        (dep(name="prod", provider="azure_openai", deployment="o3-mini"), "reasoning"),
        (dep(name="prod-default"), "legacy"),  # nothing known: fail closed
        (dep(name="prod-default", family="reasoning"), "reasoning"),
        (dep(name="gpt-5.1", family="legacy"), "legacy"),
        (dep(name="claude", provider="anthropic", model="claude-sonnet-4-5"), "legacy"),
        (dep(name="claude", provider="anthropic", family="reasoning"), "reasoning"),
        (dep(name="gpt-5", provider="scripted"), None),  # tests' models are left alone...
        (dep(name="echo", provider="scripted", family="reasoning"), "reasoning"),  # ...unless set
        (dep(name="o3", provider="embedded"), None),
    ],
)
def test_deployment_family(config: DeploymentConfig, expected: str | None) -> None:
    assert deployment_family(config) == expected


def test_for_deployment_wraps_only_where_compat_applies() -> None:
    bare = ScriptedModel("echo")
    assert CompatModel.for_deployment(bare, dep(name="echo", provider="scripted")) is bare
    wrapped = CompatModel.for_deployment(bare, dep(name="gpt-5.1", unsupported_params="strict"))
    assert isinstance(wrapped, CompatModel)
    assert (wrapped.family, wrapped.unsupported_params, wrapped.inner) == (
        "reasoning",
        "strict",
        bare,
    )


# -- parameter rules ----------------------------------------------------------------------


@pytest.mark.parametrize("param", SAMPLING_PARAMS)
def test_reasoning_drops_each_unsupported_param(param: str) -> None:
    request = ModelRequest(messages=HELLO, **{param: SET_VALUES[param]})
    adapted, notes = wrap("reasoning").adapt(request)
    assert getattr(adapted, param) in (None, ())
    assert notes == (Adjustment(param, "dropped", "not supported by reasoning models"),)


@pytest.mark.parametrize("param", SAMPLING_PARAMS)
def test_reasoning_strict_rejects_each_unsupported_param(param: str) -> None:
    request = ModelRequest(messages=HELLO, **{param: SET_VALUES[param]})
    with pytest.raises(UserError) as caught:
        wrap("reasoning", unsupported_params="strict").adapt(request)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.code == "unsupported_parameter"
    assert f"Unsupported parameter: {param!r}" in caught.value.message


@pytest.mark.parametrize("mode", ["drop", "strict"])
@pytest.mark.parametrize("param", SAMPLING_PARAMS)
def test_legacy_keeps_sampling_params(param: str, mode: str) -> None:
    request = ModelRequest(messages=HELLO, **{param: SET_VALUES[param]})
    adapted, notes = wrap("legacy", unsupported_params=mode).adapt(request)
    assert adapted == request
    assert notes == ()


def test_reasoning_drops_all_together_and_keeps_the_rest() -> None:
    request = ModelRequest(messages=HELLO, seed=7, user="u1", **SET_VALUES)
    adapted, notes = wrap("reasoning").adapt(request)
    assert [n.param for n in notes] == list(SAMPLING_PARAMS)
    assert all(getattr(adapted, p) in (None, ()) for p in SAMPLING_PARAMS)
    assert (adapted.seed, adapted.user, adapted.messages) == (7, "u1", HELLO)


@pytest.mark.parametrize("mode", ["drop", "strict"])
def test_unset_params_are_no_adjustment(mode: str) -> None:
    request = ModelRequest(messages=HELLO)
    for family in ("reasoning", "legacy"):
        adapted, notes = wrap(family, unsupported_params=mode).adapt(request)
        assert adapted is request and notes == ()


@pytest.mark.parametrize(
    ("limit", "scale", "floor", "expected"),
    [
        (1000, 2.5, 4096, 4096),  # floored
        (2000, 2.5, 4096, 5000),  # scaled
        (1639, 2.5, 4096, 4098),  # 4097.5 rounds up
        (10, 3.0, 100, 100),
        (50, 3.0, 100, 150),
        (4096, 1.0, 1, 4096),
    ],
)
def test_reasoning_scales_and_floors_the_token_cap(
    limit: int, scale: float, floor: int, expected: int
) -> None:
    model = wrap("reasoning", token_scale=scale, token_floor=floor)
    adapted, notes = model.adapt(ModelRequest(messages=HELLO, max_output_tokens=limit))
    assert adapted.max_output_tokens is None
    assert adapted.max_completion_tokens == expected
    detail = f"max_tokens {limit} -> max_completion_tokens {expected}"
    assert notes == (Adjustment("max_output_tokens", "translated", detail),)


def test_reasoning_without_a_cap_sends_none() -> None:
    adapted, notes = wrap("reasoning").adapt(ModelRequest(messages=HELLO))
    assert adapted.max_completion_tokens is None and notes == ()


def test_reasoning_keeps_an_explicit_completion_budget() -> None:
    request = ModelRequest(messages=HELLO, max_completion_tokens=300)
    adapted, notes = wrap("reasoning").adapt(request)
    assert adapted.max_completion_tokens == 300 and notes == ()
    both = ModelRequest(messages=HELLO, max_completion_tokens=300, max_output_tokens=100)
    adapted, notes = wrap("reasoning").adapt(both)
    assert (adapted.max_completion_tokens, adapted.max_output_tokens) == (300, None)
    assert notes[0].param == "max_output_tokens" and notes[0].action == "dropped"


def test_legacy_keeps_max_tokens_and_translates_a_completion_budget() -> None:
    request = ModelRequest(messages=HELLO, max_output_tokens=1000)
    adapted, notes = wrap("legacy").adapt(request)
    assert adapted.max_output_tokens == 1000 and notes == ()
    adapted, notes = wrap("legacy").adapt(ModelRequest(messages=HELLO, max_completion_tokens=80))
    assert (adapted.max_output_tokens, adapted.max_completion_tokens) == (80, None)
    detail = "max_completion_tokens 80 -> max_tokens 80"
    assert notes == (Adjustment("max_completion_tokens", "translated", detail),)


@pytest.mark.parametrize("mode", ["drop", "strict"])
def test_reasoning_controls_pass_to_reasoning_models_only(mode: str) -> None:
    request = ModelRequest(messages=HELLO, reasoning_effort="low", verbosity="high")
    adapted, notes = wrap("reasoning", unsupported_params=mode).adapt(request)
    assert (adapted.reasoning_effort, adapted.verbosity) == ("low", "high") and notes == ()
    adapted, notes = wrap("legacy", unsupported_params=mode).adapt(request)
    assert (adapted.reasoning_effort, adapted.verbosity) == (None, None)
    assert notes == (
        Adjustment("reasoning_effort", "dropped", "only reasoning models take it"),
        Adjustment("verbosity", "dropped", "only reasoning models take it"),
    )


MIXED = (
    ChatMessage("system", "Be brief."),
    ChatMessage("developer", "Answer in French."),
    ChatMessage("user", "hello"),
)


def roles(request: ModelRequest) -> list[str]:
    return [m.role for m in request.messages]


def test_developer_role_is_opt_in_for_reasoning_models() -> None:
    request = ModelRequest(messages=MIXED)
    adapted, notes = wrap("reasoning").adapt(request)
    assert roles(adapted) == ["system", "developer", "user"] and notes == ()
    adapted, notes = wrap("reasoning", developer_role=True).adapt(request)
    assert roles(adapted) == ["developer", "developer", "user"]
    assert [m.content for m in adapted.messages] == [m.content for m in MIXED]
    assert notes == (Adjustment("messages", "translated", "system -> developer (1 message)"),)


@pytest.mark.parametrize("developer_role", [False, True])
def test_legacy_models_get_developer_messages_as_system(developer_role: bool) -> None:
    adapted, notes = wrap("legacy", developer_role=developer_role).adapt(
        ModelRequest(messages=MIXED)
    )
    assert roles(adapted) == ["system", "system", "user"]
    assert notes == (Adjustment("messages", "translated", "developer -> system (1 message)"),)


# -- the report -----------------------------------------------------------------------------


async def test_adjustments_are_on_the_finish_report() -> None:
    model = wrap("reasoning", developer_role=True)
    request = ModelRequest(
        messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "hi")),
        temperature=0.3,
        stop=("END",),
        max_output_tokens=100,
        reasoning_effort="low",
    )
    result = await complete(model, request)
    assert result.text == "developer: Be brief.\nuser: hi"  # the echo shows what it was sent
    assert result.finish.report.as_dict()["adjustments"] == [
        {
            "param": "temperature",
            "action": "dropped",
            "detail": "not supported by reasoning models",
        },
        {"param": "stop", "action": "dropped", "detail": "not supported by reasoning models"},
        {
            "param": "max_output_tokens",
            "action": "translated",
            "detail": "max_tokens 100 -> max_completion_tokens 4096",
        },
        {"param": "messages", "action": "translated", "detail": "system -> developer (1 message)"},
    ]


async def test_strict_rejects_before_anything_is_sent() -> None:
    class Counting(ScriptedModel):
        calls = 0

        async def stream(self, request: ModelRequest) -> AsyncIterator[Any]:
            Counting.calls += 1
            async for event in super().stream(request):
                yield event

    model = CompatModel(Counting("dep"), family="reasoning", unsupported_params="strict")
    with pytest.raises(UserError):
        await complete(model, ModelRequest(messages=HELLO, top_p=0.5))
    assert Counting.calls == 0


# -- on the wire, through the registry and the real openai adapter ------------------------------


async def test_reasoning_deployment_wire_body(fake_upstream: FakeChatUpstream) -> None:
    settings = Settings(
        deployments=[
            DeploymentConfig(
                name="gpt-5-prod-eu",
                provider="openai",
                model="compat-wire-reasoning",
                base_url=fake_upstream.base_url,
                developer_role=True,
            ),
            DeploymentConfig(
                name="gpt-4o-prod",
                provider="openai",
                model="compat-wire-legacy",
                base_url=fake_upstream.base_url,
            ),
        ]
    )
    registry = ModelRegistry(settings)
    request = ModelRequest(
        messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "hello")),
        temperature=0.2,
        top_p=0.9,
        stop=("\nSQLResult:",),
        max_output_tokens=1000,
        reasoning_effort="low",
    )
    try:
        result = await complete(registry.get("gpt-5-prod-eu"), request)
        body = fake_upstream.last("compat-wire-reasoning").body
        assert "temperature" not in body and "top_p" not in body and "stop" not in body
        assert "max_tokens" not in body
        assert body["max_completion_tokens"] == 4096
        assert body["reasoning_effort"] == "low"
        assert body["messages"][0] == {"role": "developer", "content": "Be brief."}
        assert {a.param for a in result.finish.report.adjustments} == {
            "temperature",
            "top_p",
            "stop",
            "max_output_tokens",
            "messages",
        }
        assert result.finish.report.deployment == "gpt-5-prod-eu"

        result = await complete(registry.get("gpt-4o-prod"), request)
        body = fake_upstream.last("compat-wire-legacy").body
        assert (body["temperature"], body["top_p"], body["stop"]) == (0.2, 0.9, ["\nSQLResult:"])
        assert body["max_tokens"] == 1000 and "max_completion_tokens" not in body
        assert "reasoning_effort" not in body
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert [a.param for a in result.finish.report.adjustments] == ["reasoning_effort"]
    finally:
        await registry.aclose()
