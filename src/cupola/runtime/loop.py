"""One response's agent loop: call the model; run the server-side tools it calls; call it
again with their results, until it answers, calls a client function or needs approval.

The loop yields typed run events (runtime/events.py) and leaves its result on itself
(:attr:`AgentLoop.status`, :attr:`AgentLoop.items`, :attr:`AgentLoop.incomplete_reason`,
usage and every model call's report); the runner and the stateless run turn that into a
:class:`~cupola.runtime.events.RunOutcome`. An item that grows past ``server.max_item_bytes``
(:class:`ItemCap`) ends the run ``incomplete`` here, whatever the protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from cupola.domain.limits import NUL
from cupola.domain.records import Item
from cupola.exceptions import CupolaError, ErrorInfo, ProviderError
from cupola.models.base import (
    CallReport,
    ChatMessage,
    Finish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from cupola.runtime.events import OutputAssembler, RunEvent, RunOutcome
from cupola.runtime.hooks import NO_HOOKS, Api, Hooks, ModelCall, ModelEnd, RunInfo, ToolRun
from cupola.runtime.prepare import Prepared
from cupola.runtime.tooling import MAX_ROUNDS, ServerFunctions, add_usage, rendered_messages
from cupola.tools.base import ToolContext, Toolset
from cupola.tools.registry import ToolEnv

log = logging.getLogger("cupola.runtime")


class ItemTooLarge(CupolaError):
    """A generated item grew past ``server.max_item_bytes``; the response ends incomplete."""


def _utf8_size(text: str) -> int:
    """The bytes ``text`` takes in UTF-8 (a lone surrogate counted as the 3 it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


class ItemCap:
    """Counts the bytes of the item a model reply is writing (the text of a message, the
    arguments of each call) and stops the reply when one grows past ``limit`` bytes; a NUL
    character in the reply (which no store can hold) becomes U+FFFD. One per model call:
    the loop passes it each fragment before it uses it. ASCII fragments (``str.isascii``
    is a flag lookup) are counted by their length, without encoding them."""

    __slots__ = ("_calls", "_text", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._text = 0  # bytes of the message being written
        self._calls: dict[int, int] = {}  # bytes of each call's arguments

    def text(self, event: TextDelta) -> TextDelta:
        """Count a text fragment; raise :class:`ItemTooLarge` past the cap."""
        text = event.text
        if NUL in text:
            text = text.replace(NUL, "\ufffd")
            event = TextDelta(text)
        self._text += len(text) if text.isascii() else _utf8_size(text)
        if self._text > self.limit:
            raise self._too_large()
        return event

    def call(self, event: ToolCallDelta) -> ToolCallDelta:
        """Count a call's fragment; raise :class:`ItemTooLarge` past the cap."""
        arguments = event.arguments
        if NUL in arguments:  # (JSON would carry it escaped; raw, it is junk)
            arguments = arguments.replace(NUL, "\ufffd")
            event = replace(event, arguments=arguments)
        self._text = 0  # a call closes the message; text after it is a new one
        size = len(arguments) if arguments.isascii() else _utf8_size(arguments)
        size += self._calls.get(event.index, 0)
        self._calls[event.index] = size
        if size > self.limit:
            raise self._too_large()
        return event

    def _too_large(self) -> ItemTooLarge:
        return ItemTooLarge(
            f"an output item grew past server.max_item_bytes ({self.limit} bytes)",
            code="max_item_bytes",
        )


def cap_items(p: Prepared, limit: int | None) -> None:
    """Cap the size of the items the run's model writes (:class:`ItemCap`), when there is
    a cap."""
    if limit is not None:
        p.item_limit = limit


def run_info(p: Prepared, api: Api) -> RunInfo:
    """What hooks are told about a prepared run."""
    agent = p.body.get("agent_reference")
    return RunInfo(
        response_id=p.body["id"],
        project=p.project,
        api=api,
        model=p.model.name,
        agent=agent.get("name") if isinstance(agent, dict) else None,
        agent_version=agent.get("version") if isinstance(agent, dict) else None,
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
        self.status = "incomplete"
        """How the run ended: ``completed`` or ``incomplete`` (errors propagate)."""
        self.incomplete_reason: str | None = None
        self.items: list[Item] = output.items
        """The output items, final once :meth:`run` has ended."""
        self._told = 0
        """Output items already given to the ``on_item`` hooks."""

    def outcome(self, response: dict[str, Any] | None = None) -> RunOutcome:
        """The ended run (``response``: the Responses body, when there is one)."""
        return RunOutcome(
            status=self.status,
            output=self.items,
            usage=self.usage,
            reports=tuple(self.reports),
            incomplete_reason=self.incomplete_reason,
            response=response,
        )

    @staticmethod
    def failed(error: ErrorInfo, response: dict[str, Any] | None = None) -> RunOutcome:
        """A run that failed (its output is not kept)."""
        return RunOutcome("failed", [], Usage(), (), error=error, response=response)

    async def run(self) -> AsyncIterator[RunEvent]:
        """Yield events as they happen (none when not streaming); leave the result on
        ``self``. Errors propagate, but for an item past the cap, which ends the run
        ``incomplete`` with the items finished before it."""
        if self.tools is not None and self.p.server_tools:
            self.toolsets = await self.tools.toolsets(self.p.server_tools, self.p.project)
        log_ = self.output.log
        status = "incomplete"
        try:
            await self._start()
            for event in log_.drain():
                yield event
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
                for event in log_.drain():
                    yield event
                if stop:
                    break
            else:
                self.incomplete_reason = "max_tool_calls"
        except ItemTooLarge as exc:
            log.warning("response %s ended incomplete: %s", self.p.body["id"], exc.message)
            log_.drain()  # the deltas of the item that is not kept
            self._cut()
            return
        finally:
            for toolset in self.toolsets:
                await toolset.aclose()
        self.output.finish(status)
        for event in log_.drain():
            yield event
        self.status = status
        if status == "incomplete" and self.incomplete_reason is None:
            self.incomplete_reason = "max_output_tokens"

    def _cut(self) -> None:
        """End incomplete with the items finished before the one that grew too large:
        nothing half-written is kept."""
        kept = []
        for item in self.output.items:
            if item.get("status") == "in_progress":
                break
            kept.append(item)
        self.items = kept
        self.status = "incomplete"
        self.incomplete_reason = "max_output_tokens"

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

    async def _model_turn(  # noqa: C901 (the hot path, written out: a call per fragment costs)
        self, finish: list[Finish], index: int
    ) -> AsyncIterator[RunEvent]:
        base = self.p.model_request
        request = replace(
            base,
            messages=tuple(self.messages),
            tools=(*base.tools, *self.offered.specs) if base.tool_choice != "none" else (),
        )
        started = time.perf_counter()
        first: float | None = None  # this call's first fragment
        call = ModelCall(self.info, index, request, started) if self.hooks.model_used else None
        if call is not None:
            await self.hooks.model_start(call)
        limit = self.p.item_limit
        cap = ItemCap(limit) if limit is not None else None
        stream = self.p.model.stream(request)
        try:
            try:
                async for step in stream:
                    if isinstance(step, Finish):
                        finish.append(step)
                        continue
                    if first is None:
                        first = time.perf_counter()
                        if not self.clock:
                            self.clock.append(first)
                    if isinstance(step, TextDelta):
                        self.output.text(step if cap is None else cap.text(step))
                    else:
                        if cap is not None:
                            step = cap.call(step)
                        self.output.tool_call(step, server=self.offered.owns(step.name))
                    for event in self.output.log.drain():
                        yield event
            except BaseException:
                close = getattr(stream, "aclose", None)  # a reply stopped early: end it now
                if close is not None:
                    await close()
                raise
            if not finish:
                raise ProviderError(
                    f"model {self.p.model.name!r} ended its reply without finishing"
                )
        except Exception as exc:
            if call is not None:
                await self.hooks.model_end(
                    call, ModelEnd(None, exc, _ms(started), _first_ms(started, first))
                )
            raise
        self.usage = add_usage(self.usage, finish[0].usage)
        self.reports.append(finish[0].report)
        if call is not None:
            await self.hooks.model_end(
                call, ModelEnd(finish[0], None, _ms(started), _first_ms(started, first))
            )

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


def _first_ms(started: float, first: float | None) -> float | None:
    return None if first is None else (first - started) * 1000
