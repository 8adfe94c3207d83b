"""The agent loop: history and instructions go to the model, its reply becomes items.

Function tools are run by the client: a response that calls them ends with its
``function_call`` items, and the next request brings the ``function_call_output``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from cupola.domain.limits import NUL
from cupola.exceptions import CupolaError, NotFound, ProviderError, UserError
from cupola.ids import now
from cupola.models.base import Model, ModelEvent, ModelRequest, TextDelta, ToolCallDelta
from cupola.models.registry import ModelRegistry
from cupola.runtime.events import Event, EventLog, OutputAssembler
from cupola.runtime.hooks import NO_HOOKS, Api, Hooks, RunEnd, RunInfo
from cupola.runtime.loop import AgentLoop, run_info
from cupola.runtime.prepare import Prepared, Preparer
from cupola.runtime.request import CreateResponse
from cupola.runtime.stateless import StatelessRun
from cupola.store import Store
from cupola.tools.registry import ToolEnv

log = logging.getLogger("cupola.runtime")
TERMINAL = ("completed", "failed", "incomplete", "cancelled")


def _snapshot(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "output": list(body["output"])}


class ItemTooLarge(CupolaError):
    """A generated item grew past ``server.max_item_bytes``; the response ends incomplete."""


class ItemCap(Model):
    """Wraps a model and stops its reply when one item it is writing (the text of a message,
    the arguments of a call) grows past ``limit`` bytes. A NUL character in the reply (which
    no store can hold) becomes U+FFFD."""

    def __init__(self, inner: Model, limit: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.limit = limit

    def check(self, request: ModelRequest) -> None:
        self.inner.check(request)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        return await self.inner.count_tokens(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        text = 0  # bytes of the message being written
        calls: dict[int, int] = {}  # bytes of each call's arguments
        stream = self.inner.stream(request)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if NUL in event.text:
                        event = replace(event, text=event.text.replace(NUL, "\ufffd"))
                    text += len(event.text.encode())
                    size = text
                elif isinstance(event, ToolCallDelta):
                    if NUL in event.arguments:  # (JSON would carry it escaped; raw, it is junk)
                        event = replace(event, arguments=event.arguments.replace(NUL, "\ufffd"))
                    text = 0  # a call closes the message; text after it is a new one
                    size = calls[event.index] = calls.get(event.index, 0) + len(
                        event.arguments.encode()
                    )
                else:
                    size = 0
                if size > self.limit:
                    raise ItemTooLarge(
                        f"an output item grew past server.max_item_bytes ({self.limit} bytes)",
                        code="max_item_bytes",
                    )
                yield event
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()


class Runner:
    """Creates, runs, persists and cancels responses."""

    def __init__(
        self,
        store: Store,
        models: ModelRegistry,
        default_model: str | None,
        tools: ToolEnv | None = None,
        *,
        max_item_bytes: int | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self.store = store
        self.tools = tools
        self.hooks = hooks
        """Called around every run this runner drives (runtime/hooks.py)."""
        self.max_item_bytes = max_item_bytes
        """The largest item a response may generate (None: no cap)."""
        self.preparer = Preparer(store, models, default_model)
        self._background: dict[str, asyncio.Task[None]] = {}

    async def prepare(self, project: str, req: CreateResponse) -> Prepared:
        prepared = await self.preparer.prepare(project, req)
        if self.tools is not None and prepared.server_tools:
            await self.tools.check(prepared.server_tools, project)
        return prepared

    async def create(self, project: str, req: CreateResponse) -> dict[str, Any]:
        """Run a non-streaming request to its end (or start it, when ``background``)."""
        prepared = await self.prepare(project, req)
        if prepared.background:
            return await self.start_background(prepared)
        async for _ in self.run(prepared):
            pass
        return prepared.body

    async def save_queued(self, prepared: Prepared) -> None:
        """Store a background response before it runs, so it can be polled and cancelled."""
        await self.store.save_response(
            prepared.project, prepared.body, prepared.input_items, new=True
        )

    async def start_background(self, prepared: Prepared) -> dict[str, Any]:
        await self.save_queued(prepared)
        queued = _snapshot(prepared.body)

        async def work() -> None:
            try:
                async for _ in self.run(prepared):
                    pass
            finally:
                self._background.pop(prepared.body["id"], None)

        self._background[prepared.body["id"]] = asyncio.create_task(work())
        return queued

    def follow(self, prepared: Prepared) -> AsyncIterator[Event]:
        """Run a stored background response in a task of its own and stream its events.
        A client that goes away stops listening, not the run: the response still reaches a
        terminal status (or is cancelled) and can be polled."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        listening = True
        response_id = prepared.body["id"]

        async def work() -> None:
            try:
                async for event in self.run(prepared):
                    if listening:
                        queue.put_nowait(event)
            finally:
                queue.put_nowait(None)
                self._background.pop(response_id, None)

        self._background[response_id] = asyncio.create_task(work())

        async def events() -> AsyncIterator[Event]:
            nonlocal listening
            try:
                while (event := await queue.get()) is not None:
                    yield event
            finally:
                listening = False

        return events()

    async def cancel(self, project: str, response_id: str) -> dict[str, Any]:
        stored = await self.store.get_response(project, response_id)
        body = stored.body
        if not body.get("background"):
            raise UserError("only background responses can be cancelled", param="response_id")
        if body["status"] in TERMINAL:
            return body
        task = self._background.pop(response_id, None)
        if task is not None:
            task.cancel()
        body = {**body, "status": "cancelled", "completed_at": None}
        await self.store.save_response(project, body, stored.input_items)
        return body

    async def aclose(self) -> None:
        tasks = list(self._background.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stateless(self, prepared: Prepared, api: Api) -> StatelessRun:
        """A Chat Completions or Messages run of ``prepared``: nothing stored, same hooks."""
        return StatelessRun(prepared, self.tools, hooks=self.hooks, api=api)

    async def run(self, p: Prepared) -> AsyncIterator[Event]:
        """Run the model; yield SSE events when streaming; persist the outcome."""
        body, events = p.body, EventLog(p.stream)
        started = time.perf_counter()
        body["status"] = "queued" if p.background else "in_progress"
        events.emit("response.created", response=_snapshot(body))
        body["status"] = "in_progress"
        events.emit("response.in_progress", response=_snapshot(body))
        for event in events.drain():
            yield event

        output = OutputAssembler(events)
        clock: list[float] = []
        if self.max_item_bytes is not None and not isinstance(p.model, ItemCap):
            p.model = ItemCap(p.model, self.max_item_bytes)
        info = run_info(p, "responses")
        loop = AgentLoop(p, output, clock, self.tools, hooks=self.hooks, run=info)
        error: Exception | None = None
        try:
            await self.hooks.run_start(info)
            async for event in loop.run():
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            await self._cancelled(info, loop, started)
            raise
        except ItemTooLarge as exc:
            log.warning("response %s ended incomplete: %s", body["id"], exc.message)
            events.drain()  # the deltas of the item that is not kept
            self._cut(body, output)
        except Exception as exc:  # a model failure ends the response, never the server
            if not isinstance(exc, CupolaError):
                log.exception("model %s failed", p.model.name)
            events.drain()
            self._fail(body, exc)
            error = exc
        model_done = time.perf_counter()
        body["completed_at"] = now() if body["status"] == "completed" else None
        body["timings"] = {
            "time_to_first_token_ms": round(((clock or [model_done])[0] - started) * 1000, 3),
            "model_ms": round((model_done - started) * 1000, 3),
        }
        try:
            await self._persist(p)
        except NotFound as exc:  # e.g. the conversation was deleted while the model ran
            if not p.stream:
                raise
            self._fail(body, exc)
            error = exc
        if self.hooks.run_end_used:
            end = RunEnd(
                status=body["status"],
                output=tuple(body["output"]),
                usage=loop.usage,
                reports=tuple(loop.reports),
                error=error,
                ms=(time.perf_counter() - started) * 1000,
            )
            await self.hooks.run_end(info, end)
        for event in events.drain():
            yield event
        terminal = {"completed": "response.completed", "incomplete": "response.incomplete"}
        events.emit(terminal.get(body["status"], "response.failed"), response=_snapshot(body))
        for event in events.drain():
            yield event

    async def _cancelled(self, info: RunInfo, loop: AgentLoop, started: float) -> None:
        """Tell the hooks a run was cancelled (a background cancel, a stream left early)."""
        if not self.hooks.run_end_used:
            return
        end = RunEnd(
            status="cancelled",
            output=tuple(loop.output.items),
            usage=loop.usage,
            reports=tuple(loop.reports),
            ms=(time.perf_counter() - started) * 1000,
        )
        await self.hooks.run_end(info, end)

    @staticmethod
    def _cut(body: dict[str, Any], output: OutputAssembler) -> None:
        """End the response incomplete with the items finished before the one that grew too
        large: nothing half-written is kept."""
        kept = []
        for item in output.items:
            if item.get("status") == "in_progress":
                break
            kept.append(item)
        body["output"] = kept
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "max_output_tokens"}

    @staticmethod
    def _fail(body: dict[str, Any], exc: Exception) -> None:
        body["status"] = "failed"
        body["output"] = []
        body["usage"] = None
        code = "model_error" if isinstance(exc, ProviderError) else "server_error"
        if isinstance(exc, CupolaError) and exc.code:
            code = exc.code
        message = exc.message if isinstance(exc, CupolaError) else "the model failed unexpectedly"
        body["error"] = {"code": code, "message": message}

    async def _persist(self, p: Prepared) -> None:
        body = p.body
        succeeded = body["status"] in ("completed", "incomplete")
        append = [*p.input_items, *body["output"]] if p.conversation_id and succeeded else None
        if p.store:
            if p.background and body["status"] != "cancelled":
                current = await self.store.get_response(p.project, body["id"])
                if current.body["status"] == "cancelled":
                    return
            await self.store.save_response(
                p.project, body, p.input_items, append_to_conversation=append, new=not p.background
            )
        elif append:
            await self.store.add_conversation_items(p.project, body["conversation"]["id"], append)
