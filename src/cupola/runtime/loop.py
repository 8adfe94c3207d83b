"""One response's agent loop: call the model; run the server-side tools it calls; call it
again with their results, until it answers, calls a client function or needs approval."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from cupola.domain.records import Item
from cupola.exceptions import ProviderError
from cupola.models.base import CallReport, ChatMessage, Finish, TextDelta, ToolCall, Usage
from cupola.runtime.events import Event, OutputAssembler
from cupola.runtime.hooks import NO_HOOKS, Api, Hooks, ModelCall, ModelEnd, RunInfo, ToolRun
from cupola.runtime.prepare import Prepared
from cupola.runtime.response import report_metadata, usage_object
from cupola.runtime.tooling import MAX_ROUNDS, ServerFunctions, add_usage, rendered_messages
from cupola.tools.base import ToolContext, Toolset
from cupola.tools.registry import ToolEnv


def run_info(p: Prepared, api: Api) -> RunInfo:
    """What hooks are told about a prepared run."""
    agent = p.body.get("agent_reference")
    return RunInfo(
        response_id=p.body["id"],
        project=p.project,
        api=api,
        model=p.model.name,
        agent=agent.get("name") if isinstance(agent, dict) else None,
        conversation_id=p.conversation_id,
        stream=p.stream,
        background=p.background,
        store=p.store,
        input_items=tuple(p.input_items),
    )


class AgentLoop:
    """Drives one run's model turns and server-side tool calls, calling ``hooks`` around
    each model call and tool call and on each item (the runner calls them at run start and
    end)."""

    def __init__(
        self,
        p: Prepared,
        output: OutputAssembler,
        clock: list[float],
        tools: ToolEnv | None,
        *,
        hooks: Hooks = NO_HOOKS,
        run: RunInfo | None = None,
    ) -> None:
        self.p = p
        self.hooks = hooks
        self.info = run or run_info(p, "responses")
        self.output = output
        self.clock = clock
        """Gets the time of the first token."""
        output.namespaced = p.namespaced
        self.tools = tools
        self.messages = list(p.model_request.messages)
        self.usage = Usage()
        self.ctx = ToolContext(
            project=p.project,
            response_id=p.body["id"],
            conversation_id=p.conversation_id,
            data_dir=tools.settings.data_dir if tools else Path("."),
            history=p.history,
        )
        self.toolsets: list[Toolset] = []
        self.offered = ServerFunctions([], set())
        self.reports: list[CallReport] = []
        """Every model call's report, in order (the last is recorded in the metadata)."""
        self._told = 0
        """Output items already given to the ``on_item`` hooks."""

    async def run(self) -> AsyncIterator[Event]:
        """Yield events as they happen; leave the outcome on the response body."""
        if self.tools is not None and self.p.server_tools:
            self.toolsets = await self.tools.toolsets(self.p.server_tools, self.p.project)
        try:
            await self._start()
            for event in self.output.log.drain():
                yield event
            status = "incomplete"
            for index in range(MAX_ROUNDS):
                finish: list[Finish] = []
                async for event in self._model_turn(finish, index):
                    yield event
                status = "incomplete" if finish[0].reason == "length" else "completed"
                text, client_calls, server_calls = self.output.end_round(status)
                if self.hooks.item_used:
                    await self._tell_items()
                if status == "incomplete" or not server_calls:
                    break
                stop = await self._run_calls(text, client_calls, server_calls)
                for event in self.output.log.drain():
                    yield event
                if stop:
                    break
            else:
                self.p.body["incomplete_details"] = {"reason": "max_tool_calls"}
        finally:
            for toolset in self.toolsets:
                await toolset.aclose()
        body = self.p.body
        body["output"] = self.output.finish(status)
        body["status"] = status
        if status == "incomplete" and body["incomplete_details"] is None:
            body["incomplete_details"] = {"reason": "max_output_tokens"}
        body["usage"] = usage_object(self.usage)
        extra = report_metadata(self.reports[-1], body["model"]) if self.reports else {}
        if extra:
            body["metadata"] = {**body["metadata"], **extra}

    async def _start(self) -> None:
        """Open the toolsets, then run the calls the client approved in this request."""
        for toolset in self.toolsets:
            for item in await toolset.start(self.ctx):
                await self._add(item)
        self.offered = ServerFunctions(self.toolsets, {f.name for f in self.p.model_request.tools})
        for request in self.p.approved:
            toolset = self.offered.by_label(request["server_label"])
            call = ToolCall(request["id"], request["name"], request.get("arguments") or "{}")
            tool = ToolRun(self.info, call, approved=True) if self.hooks.tool_used else None
            if tool is not None:
                await self.hooks.tool_start(tool)
            item = await toolset.run(call, self.ctx, approval_request_id=request["id"])
            if tool is not None:
                await self.hooks.tool_end(tool, item)
            await self._add(item)
            self.messages += rendered_messages(call, item)

    async def _add(self, item: Item) -> None:
        """Add a finished item made by the platform, and tell the hooks."""
        self.output.add(item)
        if self.hooks.item_used:
            await self._tell_items()

    async def _tell_items(self) -> None:
        """Give the items finished since the last time to the ``on_item`` hooks."""
        items = self.output.items
        while self._told < len(items):
            item = items[self._told]
            self._told += 1
            await self.hooks.item(self.info, item)

    async def _model_turn(self, finish: list[Finish], index: int) -> AsyncIterator[Event]:
        base = self.p.model_request
        request = replace(
            base,
            messages=tuple(self.messages),
            tools=(*base.tools, *self.offered.specs) if base.tool_choice != "none" else (),
        )
        started = time.perf_counter()
        call = ModelCall(self.info, index, request, started) if self.hooks.model_used else None
        if call is not None:
            await self.hooks.model_start(call)
        try:
            async for step in self.p.model.stream(request):
                if isinstance(step, Finish):
                    finish.append(step)
                    continue
                if not self.clock:
                    self.clock.append(time.perf_counter())
                if isinstance(step, TextDelta):
                    self.output.text(step)
                else:
                    self.output.tool_call(step, server=self.offered.owns(step.name))
                for event in self.output.log.drain():
                    yield event
            if not finish:
                raise ProviderError(
                    f"model {self.p.model.name!r} ended its reply without finishing"
                )
        except Exception as exc:
            if call is not None:
                await self.hooks.model_end(call, ModelEnd(None, exc, _ms(started)))
            raise
        self.usage = add_usage(self.usage, finish[0].usage)
        self.reports.append(finish[0].report)
        if call is not None:
            await self.hooks.model_end(call, ModelEnd(finish[0], None, _ms(started)))

    async def _run_calls(
        self, text: str, client_calls: list[ToolCall], server_calls: list[ToolCall]
    ) -> bool:
        """Run this turn's server calls; True when the response must end here."""
        self.messages.append(
            ChatMessage("assistant", text, tool_calls=(*client_calls, *server_calls))
        )
        stop = bool(client_calls)
        for call in server_calls:
            toolset, raw = self.offered.resolve(call)
            if toolset.requires_approval(raw):
                await self._add(toolset.approval_request(raw))
                stop = True
                continue
            tool = ToolRun(self.info, call) if self.hooks.tool_used else None
            if tool is not None:
                await self.hooks.tool_start(tool)
            item = await toolset.run(raw, self.ctx)
            if tool is not None:
                await self.hooks.tool_end(tool, item)
            await self._add(item)
            self.messages += rendered_messages(call, item)[1:]
        return stop


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
