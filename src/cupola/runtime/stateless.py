"""Running a request once, without storing it: what the Chat Completions and Anthropic
Messages endpoints share.

Those endpoints translate their body into a :class:`CreateResponse` (``store=false``), prepare
it as the Responses API does, and run it through the same agent loop, which yields the same
typed events (runtime/events.py) and ends in a :class:`RunOutcome`; the server renders them
as Chat Completions chunks or Anthropic events. ``model`` names a deployment or an agent
(``name`` or ``name:version``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from cupola.domain.records import Item
from cupola.exceptions import NotFound, ProviderError, UserError
from cupola.models.base import CallReport, ToolCall
from cupola.models.registry import ModelRegistry
from cupola.runtime.events import EventLog, OutputAssembler, RunEvent, RunOutcome
from cupola.runtime.hooks import NO_HOOKS, Api, Hooks, RunEnd
from cupola.runtime.loop import AgentLoop, run_info
from cupola.runtime.prepare import Prepared
from cupola.runtime.request import AgentReference
from cupola.store import Store
from cupola.tools.registry import ToolEnv


@dataclass(frozen=True, slots=True)
class Target:
    """What a client's ``model`` names: a deployment, or an agent (and maybe its version)."""

    deployment: str | None = None
    agent: AgentReference | None = None

    @property
    def fields(self) -> dict[str, object]:
        """The ``CreateResponse`` fields that select it."""
        if self.agent is not None:
            return {"agent_reference": self.agent}
        return {"model": self.deployment}


async def resolve_target(store: Store, models: ModelRegistry, project: str, name: str) -> Target:
    """A deployment of that name, else an agent (``name`` or ``name:version``); else 404."""
    try:
        models.get(name)
        return Target(deployment=name)
    except NotFound:
        pass
    agent, _, version = name.partition(":")
    try:
        if not 0 < len(agent) <= 64:
            raise NotFound(name)
        ref = AgentReference(name=agent, version=version or None)
        found = await store.get_agent_version(project, ref.name, ref.selector())
    except (NotFound, UserError):
        raise NotFound(
            f"model {name!r} not found: no deployment or agent of that name",
            param="model",
            code="model_not_found",
        ) from None
    return Target(agent=AgentReference(name=found.name, version=str(found.version)))


def merge_reports(reports: list[CallReport], requested: str) -> CallReport:
    """One report for every model call of a run: the last call's deployment and route,
    attempts summed, adjustments gathered (each once)."""
    if not reports:
        return CallReport(deployment=requested, attempts=0)
    last = reports[-1]
    adjustments = tuple(dict.fromkeys(a for r in reports for a in r.adjustments))
    failed = tuple(dict.fromkeys(d for r in reports for d in r.failed_over))
    return CallReport(
        deployment=last.deployment or requested,
        attempts=sum(r.attempts for r in reports),
        failed_over=failed,
        adjustments=adjustments,
        route=last.route,
        route_reason=last.route_reason,
    )


def finish_reason(outcome: RunOutcome) -> str:
    """Why the reply ended, as Chat Completions says it (Messages maps it): ``length`` for a
    reply cut at its token limit (or at the item cap), ``tool_calls`` when it ends with
    client function calls, else ``stop``."""
    if outcome.status == "incomplete" and outcome.incomplete_reason == "max_output_tokens":
        return "length"
    if any(item.get("type") == "function_call" for item in outcome.output):
        return "tool_calls"
    return "stop"


class StatelessRun:
    """One prepared request run through the agent loop, nothing stored."""

    def __init__(
        self,
        prepared: Prepared,
        tools: ToolEnv | None,
        *,
        hooks: Hooks = NO_HOOKS,
        api: Api = "chat.completions",
    ) -> None:
        if prepared.store or prepared.background or prepared.conversation_id:
            raise ValueError("a stateless run takes an unstored, foreground request")
        self.prepared = prepared
        self.requested = prepared.model.name
        """The deployment the request named (wrappers may serve it from another)."""
        self.hooks = hooks
        self.info = run_info(prepared, api)
        self.loop = AgentLoop(
            prepared,
            OutputAssembler(EventLog(prepared.stream)),
            [],
            tools,
            hooks=hooks,
            run=self.info,
        )

    async def events(self) -> AsyncIterator[RunEvent | RunOutcome]:
        """Run to the end: the run's events (none when the request does not stream), then
        its :class:`RunOutcome`. Errors propagate: a bad request as :class:`UserError`, a
        failed model as :class:`ProviderError` (the caller classifies them)."""
        started = time.perf_counter()
        status, error = "cancelled", None
        try:
            await self.hooks.run_start(self.info)
            async for event in self.loop.run():
                yield event
            _refuse_approvals(self.loop.items)
            status = self.loop.status
        except Exception as exc:  # told to the hooks, then raised to the caller
            status, error = "failed", exc
            raise
        finally:
            if self.hooks.run_end_used:
                end = RunEnd(
                    status=status,
                    output=tuple(self.loop.items),
                    usage=self.loop.usage,
                    reports=tuple(self.loop.reports),
                    error=error,
                    ms=(time.perf_counter() - started) * 1000,
                )
                await self.hooks.run_end(self.info, end)
        yield self.loop.outcome()

    async def run(self) -> RunOutcome:
        """Run to the end (the request does not stream)."""
        async for event in self.events():
            if isinstance(event, RunOutcome):
                return event
        raise AssertionError("a run ends with its outcome")

    def report(self, outcome: RunOutcome) -> CallReport:
        """One report for the run's model calls (see :func:`merge_reports`)."""
        return merge_reports(list(outcome.reports), self.requested)


def _refuse_approvals(output: list[Item]) -> None:
    """An agent's MCP call waiting for approval cannot be granted through these APIs."""
    for item in output:
        if item.get("type") == "mcp_approval_request":
            raise UserError(
                f"the agent asked for approval to call {item.get('name')!r} on MCP server "
                f"{item.get('server_label')!r}; this API cannot grant approvals: use the "
                "Responses API, or set require_approval: never on that tool",
                param="model",
                code="approval_required",
            )


def arguments_object(call: ToolCall) -> dict[str, object]:
    """A call's arguments as a JSON object (what Anthropic's ``tool_use.input`` holds)."""
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(
            f"the model called {call.name!r} with arguments that are not a JSON object: "
            f"{call.arguments[:200]!r}"
        )
    return value
