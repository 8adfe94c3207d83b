"""The metrics hook: Prometheus counters and histograms of every run, per project, agent,
agent version and deployment (served at ``GET /metrics``, docs/observability.md).

Every series carries the labels ``project``, ``agent``, ``agent_version`` and
``deployment`` (the deployment the run asked for; ``""`` for a run without an agent or a
version). The names follow Prometheus' conventions (a unit suffix, ``_total`` on counters);
where the OpenTelemetry GenAI conventions define a metric, the bucket boundaries are theirs:

==========================================  ==============================================
``cupola_runs_total{status}``               runs ended, by status (``completed``,
                                            ``incomplete``, ``failed``, ``cancelled``)
``cupola_run_duration_seconds``             a run's wall time (histogram;
                                            ``gen_ai.client.operation.duration`` buckets)
``cupola_time_to_first_token_seconds``      each model call's first text or tool-call
                                            fragment (histogram; ``gen_ai.server.time_to_
                                            first_token``)
``cupola_tokens_total{type}``               input / output tokens of every model call
                                            (``gen_ai.client.token.usage`` with
                                            ``gen_ai.token.type``, as a counter)
``cupola_cost_usd_total``                   the estimated cost, from the serving
                                            deployment's ``input_price_per_million`` and
                                            ``output_price_per_million``
``cupola_tool_calls_total{tool,outcome}``   server-side tool calls by tool name and outcome
==========================================  ==============================================

Cardinality stays bounded: no response, conversation or call ids; the values of the
``agent``, ``agent_version`` and ``tool`` labels a server has not seen are kept up to
:data:`MAX_LABEL_VALUES` each, and any beyond are counted as ``_other``.

The hook does no I/O: each method updates in-memory series (a dictionary lookup and a lock
in ``prometheus_client``), some tens of microseconds per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Histogram

from cupola.domain.records import Item
from cupola.hooks import ModelCall, ModelEnd, RunEnd, RunHooks, RunInfo, ToolRun
from cupola.settings import DeploymentConfig

RUN_LABELS = ("project", "agent", "agent_version", "deployment")
"""The labels every cupola series carries."""

RUN_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    163.84, 327.68,
)  # fmt: skip
"""The GenAI conventions' ``gen_ai.client.operation.duration`` boundaries (two more
doublings: a run with tools can take minutes)."""

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""The GenAI conventions' ``gen_ai.server.time_to_first_token`` boundaries."""

MAX_LABEL_VALUES = 500
"""Distinct values kept per open-ended label (agent, agent version, tool); later ones are
counted as ``_other``."""

OTHER = "_other"

_M = TypeVar("_M", Counter, Histogram)


@dataclass(frozen=True, slots=True)
class Price:
    """A deployment's prices, in US dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The estimated cost of a call, in US dollars."""
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


class _Bounded:
    """An open-ended label's values: the first ``limit`` distinct ones, then ``_other``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


def tool_outcome(item: Item) -> str:
    """A tool call's outcome as its item says: its ``status``, else ``failed`` when it
    carries an error, else ``completed``."""
    status = item.get("status")
    if isinstance(status, str) and status:
        return status
    return "failed" if item.get("error") else "completed"


class MetricsHooks(RunHooks):
    """Counts every run into ``registry`` (a new one, per server, by default: never the
    process-global registry, so two apps in one process keep apart). ``prices`` maps a
    deployment name to its :class:`Price`; a deployment it does not list costs nothing."""

    def __init__(
        self,
        prices: Mapping[str, Price] | None = None,
        *,
        registry: CollectorRegistry | None = None,
        max_label_values: int = MAX_LABEL_VALUES,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.prices = dict(prices or {})
        self._agent = _Bounded(max_label_values)
        self._version = _Bounded(max_label_values)
        self._tool = _Bounded(max_label_values)
        self._children: dict[tuple[object, ...], Any] = {}
        r = self.registry
        self.runs = Counter(
            "cupola_runs", "Runs ended, by status.", [*RUN_LABELS, "status"], registry=r
        )
        self.run_duration = Histogram(
            "cupola_run_duration_seconds",
            "Wall time of a run, from its start to its end (persisted).",
            RUN_LABELS,
            buckets=RUN_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "cupola_time_to_first_token_seconds",
            "Time from a model call's start to its first text or tool-call fragment.",
            RUN_LABELS,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "cupola_tokens",
            "Tokens of the model calls, by type (input or output).",
            [*RUN_LABELS, "type"],
            registry=r,
        )
        self.cost = Counter(
            "cupola_cost_usd",
            "Estimated cost of the model calls in US dollars (the deployments' prices).",
            RUN_LABELS,
            registry=r,
        )
        self.tool_calls = Counter(
            "cupola_tool_calls",
            "Server-side tool calls, by tool and outcome.",
            [*RUN_LABELS, "tool", "outcome"],
            registry=r,
        )

    @classmethod
    def from_deployments(cls, deployments: Iterable[DeploymentConfig]) -> MetricsHooks:
        """The hook priced from the deployments' ``input_price_per_million`` and
        ``output_price_per_million`` (cupola.yaml)."""
        prices = {
            d.name: Price(d.input_price_per_million or 0.0, d.output_price_per_million or 0.0)
            for d in deployments
            if d.input_price_per_million is not None or d.output_price_per_million is not None
        }
        return cls(prices)

    def _labels(self, run: RunInfo) -> tuple[str, str, str, str]:
        return (
            run.project,
            self._agent(run.agent) if run.agent else "",
            self._version(run.agent_version) if run.agent_version else "",
            run.model,
        )

    def _child(self, metric: _M, *labels: str) -> _M:
        """``metric.labels(*labels)``, cached (``labels`` costs a run more than the update:
        it checks and joins the values under a lock each time)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return cast(_M, child)

    async def on_run_end(self, run: RunInfo, end: RunEnd) -> None:
        labels = self._labels(run)
        self._child(self.runs, *labels, end.status).inc()
        self._child(self.run_duration, *labels).observe(end.ms / 1e3)

    async def on_model_end(self, call: ModelCall, end: ModelEnd) -> None:
        labels = self._labels(call.run)
        if end.first_token_ms is not None:
            self._child(self.time_to_first_token, *labels).observe(end.first_token_ms / 1e3)
        finish = end.finish
        if finish is None:
            return
        usage = finish.usage
        if usage.input_tokens:
            self._child(self.tokens, *labels, "input").inc(usage.input_tokens)
        if usage.output_tokens:
            self._child(self.tokens, *labels, "output").inc(usage.output_tokens)
        served = finish.report.deployment or call.run.model  # a fallback's or route's price
        price = self.prices.get(served) or self.prices.get(call.run.model)
        if price is not None:
            cost = price.cost(usage.input_tokens, usage.output_tokens)
            self._child(self.cost, *labels).inc(cost)

    async def on_tool_end(self, tool: ToolRun, item: Item) -> None:
        labels = self._labels(tool.run)
        name = self._tool(tool.call.name)
        self._child(self.tool_calls, *labels, name, tool_outcome(item)).inc()
