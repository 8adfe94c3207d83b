"""The model-router: a deployment that picks one of several deployments per request.

Policies (``router.policy`` in cupola.yaml):

* ``cost``: the cheapest route (``cost_per_1k_tokens``) whose ``max_prompt_tokens`` fits the
  estimated prompt; ties go to the route listed first. A prompt too long for every route is a
  400 (``context_length_exceeded``).
* ``latency``: the route with the lowest moving average of observed call durations (an
  exponentially weighted average, weight :data:`LATENCY_WEIGHT` for the newest call); routes
  not tried yet come first, in order, so every route gets measured; ties go to the first
  listed. A failed call counts as taking the route's ``timeout``.
* ``complexity``: a prompt is complex when its estimate exceeds
  ``complexity_threshold_tokens``, when it offers tools, or when it asks for a JSON schema
  (``response_format``); complex prompts go to the first ``complex`` or ``any`` route, others
  to the first ``simple`` or ``any`` route (the first route when no tier fits).

Prompt size is estimated cheaply, without a tokenizer: :func:`estimate_tokens` is a quarter of
the characters of the messages, tool-call arguments and tool definitions, rounded up.

The chosen route serves the call through its own chain (compat, retries, fallbacks); the
router writes its choice and a human-readable reason on the reply's ``CallReport.route`` /
``route_reason``.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace

import orjson

from cupola.exceptions import ProviderError, UserError
from cupola.models.base import Finish, Model, ModelEvent, ModelRequest
from cupola.settings import RouteConfig, RouterConfig

CHARS_PER_TOKEN = 4
LATENCY_WEIGHT = 0.3
"""The weight of the newest observation in a route's moving-average latency."""


def estimate_tokens(request: ModelRequest) -> int:
    """Estimated prompt tokens: characters / 4, rounded up (messages, calls and tools)."""
    chars = 0
    for message in request.messages:
        chars += len(message.content)
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "")
        chars += len(orjson.dumps(tool.parameters))
    return math.ceil(chars / CHARS_PER_TOKEN)


def _money(value: float) -> str:
    return f"{value:g}"


class RouterModel(Model):
    """Picks one route per request by the configured policy (see the module doc)."""

    def __init__(
        self,
        name: str,
        config: RouterConfig,
        resolve: Callable[[str], Model],
        *,
        failure_seconds: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``resolve`` gives a route's model (its whole chain) by deployment name;
        ``failure_seconds``: the latency a failed call of each route counts as."""
        self.name = name
        self.config = config
        self.routes: tuple[RouteConfig, ...] = tuple(config.routes)
        self._resolve = resolve
        self._failure_seconds = dict(failure_seconds or {})
        self._clock = clock
        self.latency: dict[str, float] = {}
        """The moving-average seconds per call of each route tried so far."""

    def choose(self, request: ModelRequest) -> tuple[RouteConfig, str]:
        """The route for ``request`` and why."""
        policy = self.config.policy
        if policy == "cost":
            return self._cheapest(estimate_tokens(request))
        if policy == "latency":
            return self._fastest()
        return self._by_complexity(request)

    def _cheapest(self, tokens: int) -> tuple[RouteConfig, str]:
        fitting = [r for r in self.routes if (r.max_prompt_tokens or tokens) >= tokens]
        if not fitting:
            largest = max(r.max_prompt_tokens or 0 for r in self.routes)
            raise UserError(
                f"the prompt (about {tokens} tokens) is longer than any route of router "
                f"{self.name!r} accepts (max_prompt_tokens at most {largest})",
                param="input",
                code="context_length_exceeded",
            )
        best = min(fitting, key=lambda r: r.cost_per_1k_tokens)  # min keeps the first of ties
        reason = (
            f"cost: cheapest route ({_money(best.cost_per_1k_tokens)}/1k tokens) that fits "
            f"the prompt (~{tokens} tokens)"
        )
        skipped = len(self.routes) - len(fitting)
        if skipped:
            reason += f"; {skipped} route(s) too small"
        return best, reason

    def _fastest(self) -> tuple[RouteConfig, str]:
        for route in self.routes:
            if route.deployment not in self.latency:
                return route, "latency: not tried yet"
        best = min(self.routes, key=lambda r: self.latency[r.deployment])
        average = self.latency[best.deployment] * 1000
        return best, f"latency: lowest moving-average latency ({average:.0f} ms)"

    def _by_complexity(self, request: ModelRequest) -> tuple[RouteConfig, str]:
        tokens = estimate_tokens(request)
        threshold = self.config.complexity_threshold_tokens
        why: list[str] = []
        if tokens > threshold:
            why.append(f"~{tokens} tokens > {threshold}")
        if request.tools:
            why.append("has tools")
        fmt = request.response_format or {}
        if fmt.get("type") == "json_schema":
            why.append("json_schema output")
        tier = "complex" if why else "simple"
        if not why:
            why.append(f"~{tokens} tokens <= {threshold}, no tools, no json_schema")
        for route in self.routes:
            if route.tier in (tier, "any"):
                return route, f"complexity: {tier} ({', '.join(why)})"
        first = self.routes[0]
        return first, f"complexity: {tier} ({', '.join(why)}); no {tier} route, first route"

    def observe(self, deployment: str, seconds: float) -> None:
        """Add one call's duration to a route's moving average."""
        previous = self.latency.get(deployment)
        if previous is None:
            self.latency[deployment] = seconds
        else:
            self.latency[deployment] = LATENCY_WEIGHT * seconds + (1 - LATENCY_WEIGHT) * previous

    def check(self, request: ModelRequest) -> None:
        route, _ = self.choose(request)  # no route fits: a 400 before the response starts
        self._resolve(route.deployment).check(request)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        route, _ = self.choose(request)
        return await self._resolve(route.deployment).count_tokens(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        route, reason = self.choose(request)
        model = self._resolve(route.deployment)
        started = self._clock()
        finished = False
        try:
            async for event in model.stream(request):
                if isinstance(event, Finish):
                    finished = True
                    self.observe(route.deployment, self._clock() - started)
                    report = event.report
                    event = replace(
                        event,
                        report=replace(
                            report,
                            deployment=report.deployment or route.deployment,
                            route=route.deployment,
                            route_reason=reason,
                        ),
                    )
                yield event
        except ProviderError:
            if not finished:
                elapsed = self._clock() - started
                penalty = self._failure_seconds.get(route.deployment, elapsed)
                self.observe(route.deployment, max(elapsed, penalty))
            raise
