"""Running a request once, without storing it: what the Chat Completions and Anthropic
Messages endpoints share.

Those endpoints translate their body into a :class:`CreateResponse` (``store=false``), prepare
it as the Responses API does, and run it through the same agent loop; this module turns the
loop's Responses events into three neutral events (text, the start of a client function call,
a fragment of its arguments) and the finished response into an :class:`Outcome`. ``model``
names a deployment or an agent (``name`` or ``name:version``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from cupola.domain.records import Item
from cupola.exceptions import NotFound, ProviderError, UserError
from cupola.models.base import CallReport, ToolCall, Usage
from cupola.models.registry import ModelRegistry
from cupola.runtime.events import Event, EventLog, OutputAssembler
from cupola.runtime.hooks import NO_HOOKS, Api, Hooks, RunEnd
from cupola.runtime.items import text_of
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


@dataclass(frozen=True, slots=True)
class TextStart:
    """A new assistant message begins (a later one follows a server-side tool's result)."""


@dataclass(frozen=True, slots=True)
class TextPiece:
    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    """A client function call begins; ``index`` counts the reply's client calls from 0."""

    index: int
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallPiece:
    index: int
    arguments: str


ClientEvent = TextStart | TextPiece | CallStart | CallPiece


@dataclass(slots=True)
class Outcome:
    """A finished run, as the client endpoints report it."""

    texts: list[str]
    """The text of each assistant message, in order."""
    calls: list[ToolCall]
    """The client function calls the reply ends with."""
    finish: str
    """``stop``, ``length`` or ``tool_calls``."""
    usage: Usage
    report: CallReport


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


@dataclass(slots=True)
class _Translation:
    """Responses events -> client events, numbering client calls by their item id."""

    calls: dict[str, int] = field(default_factory=dict)

    def events(self, event: Event) -> list[ClientEvent]:
        kind = event["type"]
        if kind == "response.output_text.delta":
            return [TextPiece(event["delta"])]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(event["item_id"])
            return [] if index is None else [CallPiece(index, event["delta"])]
        if kind != "response.output_item.added":
            return []
        item = event["item"]
        if item.get("type") == "message":
            return [TextStart()]
        if item.get("type") != "function_call":
            return []
        index = self.calls[item["id"]] = len(self.calls)
        return [CallStart(index, item["call_id"], item["name"])]


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
        self.tools = tools
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

    @property
    def reports(self) -> list[CallReport]:
        """Every model call's report, in order."""
        return self.loop.reports

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Run to the end, yielding client events (none when the request does not stream).
        Errors propagate: a bad request as :class:`UserError`, a failed model as
        :class:`ProviderError`."""
        p = self.prepared
        translation = _Translation()
        started = time.perf_counter()
        status, error = "cancelled", None
        try:
            await self.hooks.run_start(self.info)
            async for event in self.loop.run():
                for client_event in translation.events(event):
                    yield client_event
            _refuse_approvals(p.body["output"])
            status = p.body["status"]
        except Exception as exc:
            status, error = "failed", exc
            raise
        finally:
            if self.hooks.run_end_used:
                end = RunEnd(
                    status=status,
                    output=tuple(self.loop.output.items),
                    usage=self.loop.usage,
                    reports=tuple(self.loop.reports),
                    error=error,
                    ms=(time.perf_counter() - started) * 1000,
                )
                await self.hooks.run_end(self.info, end)

    async def run(self) -> Outcome:
        async for _ in self.events():
            pass
        return self.outcome()

    def report(self) -> CallReport:
        return merge_reports(self.reports, self.requested)

    def outcome(self) -> Outcome:
        body = self.prepared.body
        texts: list[str] = []
        calls: list[ToolCall] = []
        for item in body["output"]:
            if item.get("type") == "message":
                texts.append(text_of(item.get("content")))
            elif item.get("type") == "function_call":
                calls.append(ToolCall(item["call_id"], item["name"], item["arguments"]))
        if (
            body["status"] == "incomplete"
            and (body.get("incomplete_details") or {}).get("reason") == "max_output_tokens"
        ):
            finish = "length"
        elif calls:
            finish = "tool_calls"
        else:
            finish = "stop"
        usage = body.get("usage") or {}
        return Outcome(
            texts=texts,
            calls=calls,
            finish=finish,
            usage=Usage(
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                cached_tokens=(usage.get("input_tokens_details") or {}).get("cached_tokens", 0),
                reasoning_tokens=(usage.get("output_tokens_details") or {}).get(
                    "reasoning_tokens", 0
                ),
            ),
            report=self.report(),
        )


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
