"""The metrics hook on its own: a call a fallback served is priced at the serving
deployment's prices; a failed call counts no tokens; open-ended labels stay bounded; two
hooks keep apart (each its own registry, never the global one)."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, generate_latest

from cupola.exceptions import ProviderError
from cupola.hooks import ModelCall, ModelEnd, RunEnd, RunInfo, ToolRun
from cupola.models.base import CallReport, Finish, ModelRequest, ToolCall, Usage
from cupola.settings import DeploymentConfig
from cupola.telemetry.metrics import OTHER, MetricsHooks, Price, tool_outcome


def info(agent: str | None = None, model: str = "main") -> RunInfo:
    return RunInfo(
        response_id="resp_1",
        project="p",
        api="responses",
        model=model,
        agent=agent,
        conversation_id=None,
        stream=False,
        background=False,
        store=True,
        input_items=(),
        agent_version="3" if agent else None,
    )


def sample(hook: MetricsHooks, name: str, **labels: str) -> float:
    value = hook.registry.get_sample_value(name, labels)
    return value or 0.0


RUN = {"project": "p", "agent": "", "agent_version": "", "deployment": "main"}


async def test_a_fallbacks_call_is_priced_at_the_serving_deployment() -> None:
    hook = MetricsHooks({"main": Price(1.0, 2.0), "backup": Price(10.0, 20.0)})
    run = info()
    call = ModelCall(run, 0, ModelRequest(messages=()), time.perf_counter())
    served = Finish("stop", Usage(1000, 500), report=CallReport(deployment="backup"))
    await hook.on_model_end(call, ModelEnd(served, None, 12.0, first_token_ms=40.0))
    await hook.on_model_end(call, ModelEnd(Finish("stop", Usage(1000, 500)), None, 5.0))
    await hook.on_model_end(call, ModelEnd(None, ProviderError("down"), 3.0))
    await hook.on_run_end(run, RunEnd("failed", (), Usage(2000, 1000), (), ms=1500.0))
    assert sample(hook, "cupola_cost_usd_total", **RUN) == (0.01 + 0.01) + (0.001 + 0.001)
    assert sample(hook, "cupola_tokens_total", **RUN, type="input") == 2000
    assert sample(hook, "cupola_tokens_total", **RUN, type="output") == 1000
    assert sample(hook, "cupola_time_to_first_token_seconds_count", **RUN) == 1
    assert sample(hook, "cupola_time_to_first_token_seconds_sum", **RUN) == 0.04
    assert sample(hook, "cupola_runs_total", **RUN, status="failed") == 1
    assert sample(hook, "cupola_run_duration_seconds_sum", **RUN) == 1.5
    assert sample(hook, "cupola_run_duration_seconds_bucket", **RUN, le="1.28") == 0
    assert sample(hook, "cupola_run_duration_seconds_bucket", **RUN, le="2.56") == 1


async def test_open_ended_labels_are_bounded() -> None:
    hook = MetricsHooks(max_label_values=2)
    for name in ("a", "b", "c", "d", "a"):
        run = info(agent=name)
        await hook.on_run_end(run, RunEnd("completed", (), Usage(), ()))
        tool = ToolRun(run, ToolCall("call_1", f"tool_{name}", "{}"))
        await hook.on_tool_end(tool, {"type": "mcp_call", "error": "boom"})
    agents = {"project": "p", "agent_version": "3", "deployment": "main", "status": "completed"}
    assert sample(hook, "cupola_runs_total", **agents, agent="a") == 2
    assert sample(hook, "cupola_runs_total", **agents, agent="b") == 1
    assert sample(hook, "cupola_runs_total", **agents, agent=OTHER) == 2
    assert sample(hook, "cupola_runs_total", **agents, agent="c") == 0
    tools = {"project": "p", "agent": OTHER, "agent_version": "3", "deployment": "main"}
    assert sample(hook, "cupola_tool_calls_total", **tools, tool=OTHER, outcome="failed") == 2


def test_tool_outcome_and_prices_from_config() -> None:
    assert tool_outcome({"type": "mcp_call", "status": "incomplete"}) == "incomplete"
    assert tool_outcome({"type": "mcp_call", "error": "x"}) == "failed"
    assert tool_outcome({"type": "function_call_output"}) == "completed"
    hook = MetricsHooks.from_deployments(
        [
            DeploymentConfig(name="paid", provider="scripted", output_price_per_million=3.0),
            DeploymentConfig(name="free", provider="scripted"),
        ]
    )
    assert hook.prices == {"paid": Price(0.0, 3.0)}
    other = MetricsHooks()
    assert other.registry is not hook.registry and hook.registry is not REGISTRY
    assert b"cupola_runs_total" not in generate_latest(REGISTRY)
