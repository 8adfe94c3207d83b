"""Model-family compatibility: the same request works on legacy and reasoning models.

GPT-5.x and the o-series (o1, o3, o4) are *reasoning* models: they take
``max_completion_tokens`` (a budget shared by hidden reasoning and the visible answer) instead
of ``max_tokens``, reject the sampling parameters (temperature, top_p, penalties, logprobs,
logit_bias) and ``stop``, and add ``reasoning_effort`` and ``verbosity``, which the *legacy*
models (GPT-4, GPT-4o, GPT-3.5, and every other chat model) reject in turn.

:func:`model_family` classifies a deployment; :class:`CompatModel` wraps any :class:`Model` and
rewrites each request for its family. Every parameter it drops or translates becomes an
:class:`Adjustment` on the reply's :class:`CallReport`, so nothing is lost silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Literal, TypeAlias

from cupola.exceptions import UserError
from cupola.models.base import (
    Adjustment,
    Finish,
    Model,
    ModelEvent,
    ModelRequest,
    Role,
)
from cupola.settings import DeploymentConfig

Family: TypeAlias = Literal["reasoning", "legacy"]

_REASONING_NAMES = (
    # gpt-5, gpt5, gpt-5.1, gpt_5, "GPT 5", gpt-5-prod-eu, gpt5mini-eu; not gpt-50
    re.compile(r"(?:^|[^a-z0-9])gpt[-_ ]?5(?:\.\d+)?(?:[^0-9]|$)", re.IGNORECASE),
    # o1, o3, o4, o3-mini, o1-preview, my-o4-deployment; not gpt-4o, not o10
    re.compile(r"(?:^|[^a-z0-9])o[134](?:-mini|-preview)?(?:[^a-z0-9]|$)", re.IGNORECASE),
)
_LEGACY_NAMES = (
    re.compile(r"gpt[-_ ]?4", re.IGNORECASE),  # gpt-4, gpt-4o, gpt-4-32k, gpt-4.1, gpt4
    re.compile(r"gpt[-_ ]?3\.?5", re.IGNORECASE),  # gpt-3.5-turbo, gpt-35-turbo
)
_OVERRIDES: dict[str, Family] = {
    # the seed's OPENAI_MODEL_FAMILY spellings, and cupola's own
    "reasoning": "reasoning",
    "gpt-5": "reasoning",
    "gpt5": "reasoning",
    "gpt-5.1": "reasoning",
    "o-series": "reasoning",
    "o1": "reasoning",
    "o3": "reasoning",
    "legacy": "legacy",
    "gpt-4": "legacy",
    "gpt4": "legacy",
    "gpt-3.5": "legacy",
    "gpt35": "legacy",
    "chat": "legacy",
}

SAMPLING_PARAMS = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "stop",
)
"""What reasoning models reject, in the order they are checked."""
REASONING_ONLY_PARAMS = ("reasoning_effort", "verbosity")
"""What only reasoning models take."""
COMPAT_PROVIDERS = frozenset({"openai", "azure_openai", "anthropic"})
"""Providers wrapped by default; others only when ``family`` is set explicitly."""


def _known_family(name: str) -> Family | None:
    """The family a name says, or None when it names neither (e.g. ``prod-default``)."""
    if any(p.search(name) for p in _REASONING_NAMES):
        return "reasoning"
    if any(p.search(name) for p in _LEGACY_NAMES):
        return "legacy"
    return None


def model_family(name: str | None, override: str | None = None) -> Family:
    """``"reasoning"`` for GPT-5.x and o1/o3/o4, ``"legacy"`` for everything else.

    ``override`` (the deployment's ``family``) wins unless it is None or ``"auto"``. An empty
    or unknown name is legacy (fail closed): misclassifying a reasoning deployment as legacy
    fails fast with the provider's clear "unsupported parameter" error, while the reverse
    would silently drop parameters the caller meant.
    """
    if override is not None:
        forced = _OVERRIDES.get(override.strip().lower())
        if forced is not None:
            return forced
    text = (name or "").strip()
    if not text:
        return "legacy"
    return _known_family(text) or "legacy"


def deployment_family(config: DeploymentConfig) -> Family | None:
    """The family compat treats ``config`` as, or None when compat does not apply.

    An explicit ``family`` always applies. Otherwise, for openai and azure_openai: the first of
    the upstream model name, the Azure deployment name and the deployment's own name that
    names a known family decides (``model: gpt-5.1`` under ``name: prod-default`` is a
    reasoning deployment), legacy when none does. anthropic has no reasoning family here:
    legacy. scripted, embedded, foundry_agent and router deployments are left alone.
    """
    if config.family != "auto":
        return model_family(config.name, config.family)
    if config.provider not in COMPAT_PROVIDERS:
        return None
    if config.provider == "anthropic":
        return "legacy"
    for name in (config.model, config.deployment, config.name):
        if name:
            known = _known_family(name.strip())
            if known is not None:
                return known
    return "legacy"


def _is_set(value: Any) -> bool:
    return value is not None and value != ()


def _cleared(param: str) -> Any:
    return () if param == "stop" else None


class CompatModel(Model):
    """Rewrites each request for the wrapped model's family; reports every change."""

    def __init__(
        self,
        inner: Model,
        *,
        family: Family,
        unsupported_params: Literal["drop", "strict"] = "drop",
        token_scale: float = 2.5,
        token_floor: int = 4096,
        developer_role: bool = False,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.family: Family = family
        self.unsupported_params = unsupported_params
        self.token_scale = token_scale
        self.token_floor = token_floor
        self.developer_role = developer_role

    @classmethod
    def for_deployment(cls, inner: Model, config: DeploymentConfig) -> Model:
        """``inner`` wrapped as ``config`` asks, or ``inner`` itself when compat does not apply
        (see :func:`deployment_family`)."""
        family = deployment_family(config)
        if family is None:
            return inner
        return cls(
            inner,
            family=family,
            unsupported_params=config.unsupported_params,
            token_scale=config.reasoning_token_scale,
            token_floor=config.reasoning_token_floor,
            developer_role=config.developer_role,
        )

    def check(self, request: ModelRequest) -> None:
        self.adapt(request)  # strict mode refuses here
        self.inner.check(request)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        adapted, _ = self.adapt(request)
        return await self.inner.count_tokens(adapted)

    def adapt(self, request: ModelRequest) -> tuple[ModelRequest, tuple[Adjustment, ...]]:
        """The request as this family takes it, and what was changed.

        Raises :class:`UserError` (400) in ``strict`` mode when a reasoning model is sent a
        parameter it rejects.
        """
        changes: dict[str, Any] = {}
        notes: list[Adjustment] = []
        if self.family == "reasoning":
            self._reasoning(request, changes, notes)
        else:
            self._legacy(request, changes, notes)
        self._roles(request, changes, notes)
        if not changes:
            return request, ()
        return replace(request, **changes), tuple(notes)

    def _reasoning(
        self, request: ModelRequest, changes: dict[str, Any], notes: list[Adjustment]
    ) -> None:
        for param in SAMPLING_PARAMS:
            if not _is_set(getattr(request, param)):
                continue
            if self.unsupported_params == "strict":
                raise UserError(
                    f"Unsupported parameter: {param!r} is not supported by reasoning "
                    f"deployment {self.name!r} (its unsupported_params is strict; "
                    "set it to drop to have cupola drop the parameter instead)",
                    param=param,
                    code="unsupported_parameter",
                )
            changes[param] = _cleared(param)
            notes.append(Adjustment(param, "dropped", "not supported by reasoning models"))
        limit = request.max_output_tokens
        if limit is None:
            return
        changes["max_output_tokens"] = None
        if request.max_completion_tokens is not None:
            detail = f"max_completion_tokens {request.max_completion_tokens} was also given"
            notes.append(Adjustment("max_output_tokens", "dropped", detail))
        elif limit < 0:
            notes.append(Adjustment("max_output_tokens", "dropped", f"{limit} means no cap"))
        else:
            budget = max(math.ceil(limit * self.token_scale), self.token_floor)
            changes["max_completion_tokens"] = budget
            detail = f"max_tokens {limit} -> max_completion_tokens {budget}"
            notes.append(Adjustment("max_output_tokens", "translated", detail))

    def _legacy(
        self, request: ModelRequest, changes: dict[str, Any], notes: list[Adjustment]
    ) -> None:
        for param in REASONING_ONLY_PARAMS:
            if _is_set(getattr(request, param)):
                changes[param] = None
                notes.append(Adjustment(param, "dropped", "only reasoning models take it"))
        budget = request.max_completion_tokens
        if budget is not None:
            changes["max_completion_tokens"] = None
            if request.max_output_tokens is None:
                changes["max_output_tokens"] = budget
                detail = f"max_completion_tokens {budget} -> max_tokens {budget}"
                notes.append(Adjustment("max_completion_tokens", "translated", detail))
            else:
                detail = f"max_tokens {request.max_output_tokens} was also given"
                notes.append(Adjustment("max_completion_tokens", "dropped", detail))

    def _roles(
        self, request: ModelRequest, changes: dict[str, Any], notes: list[Adjustment]
    ) -> None:
        source: Role
        target: Role
        if self.family == "reasoning" and self.developer_role:
            source, target = "system", "developer"
        elif self.family == "legacy":
            source, target = "developer", "system"
        else:
            return
        count = sum(m.role == source for m in request.messages)
        if not count:
            return
        changes["messages"] = tuple(
            replace(m, role=target) if m.role == source else m for m in request.messages
        )
        noun = "message" if count == 1 else "messages"
        notes.append(Adjustment("messages", "translated", f"{source} -> {target} ({count} {noun})"))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        adapted, notes = self.adapt(request)
        async for event in self.inner.stream(adapted):
            if notes and isinstance(event, Finish):
                report = event.report
                event = replace(
                    event, report=replace(report, adjustments=(*notes, *report.adjustments))
                )
            yield event

    async def aclose(self) -> None:
        await self.inner.aclose()
