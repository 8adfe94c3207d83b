"""The agent loop: history and instructions go to the model, its reply becomes items.

Function tools are run by the client: a response that calls them ends with its
``function_call`` items, and the next request brings the ``function_call_output``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from cupola.exceptions import ErrorInfo, NotFound, UserError, classify
from cupola.ids import now
from cupola.models.registry import ModelRegistry
from cupola.runtime.events import EventLog, OutputAssembler, RunEvent, RunOutcome, StatusChanged
from cupola.runtime.hooks import NO_HOOKS, Api, Hooks, RunEnd, RunInfo
from cupola.runtime.loop import AgentLoop, ItemCap, ItemTooLarge, cap_items, run_info
from cupola.runtime.prepare import Prepared, Preparer
from cupola.runtime.request import CreateResponse
from cupola.runtime.response import error_object, report_metadata, usage_object
from cupola.runtime.stateless import StatelessRun
from cupola.store import Store
from cupola.tools.registry import ToolEnv

log = logging.getLogger("cupola.runtime")
TERMINAL = ("completed", "failed", "incomplete", "cancelled")
__all__ = ["ItemCap", "ItemTooLarge", "Runner", "TERMINAL"]


def _snapshot(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "output": list(body["output"])}


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

    def follow(self, prepared: Prepared) -> AsyncIterator[RunEvent | RunOutcome]:
        """Run a stored background response in a task of its own and stream its events.
        A client that goes away stops listening, not the run: the response still reaches a
        terminal status (or is cancelled) and can be polled."""
        queue: asyncio.Queue[RunEvent | RunOutcome | None] = asyncio.Queue()
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

        async def events() -> AsyncIterator[RunEvent | RunOutcome]:
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
        """A Chat Completions or Messages run of ``prepared``: nothing stored, same hooks,
        same item cap."""
        cap_items(prepared, self.max_item_bytes)
        return StatelessRun(prepared, self.tools, hooks=self.hooks, api=api)

    async def run(self, p: Prepared) -> AsyncIterator[RunEvent | RunOutcome]:
        """Run the model and persist the result. Yields the run's events when the request
        streams (:class:`StatusChanged` created and in_progress first), and always ends with
        its :class:`RunOutcome` (``outcome.response`` is the body, as stored). A failure of
        the model, a tool or a hook fails the response; it is not raised."""
        body, streaming = p.body, p.stream
        started = time.perf_counter()
        if streaming:
            body["status"] = "queued" if p.background else "in_progress"
            yield StatusChanged("created", _snapshot(body))
            body["status"] = "in_progress"
            yield StatusChanged("in_progress", _snapshot(body))
        else:
            body["status"] = "in_progress"
        cap_items(p, self.max_item_bytes)
        clock: list[float] = []
        info = run_info(p, "responses")
        loop = AgentLoop(
            p, OutputAssembler(EventLog(streaming)), clock, self.tools, hooks=self.hooks, run=info
        )
        error: Exception | None = None
        failure: ErrorInfo | None = None
        try:
            if self.hooks.run_start_used:
                await self.hooks.run_start(info)
            async for event in loop.run():
                yield event
            self._finish(body, loop)
        except (asyncio.CancelledError, GeneratorExit):
            await self._cancelled(info, loop, started)
            raise
        except Exception as exc:  # the model, tools and hooks: a failure ends the response
            failure, error = self._fail(body, exc), exc
            if not failure.expected:
                log.error("response %s: model %s failed", body["id"], p.model.name, exc_info=exc)
        model_done = time.perf_counter()
        body["completed_at"] = now() if body["status"] == "completed" else None
        body["timings"] = {
            "time_to_first_token_ms": round(((clock or [model_done])[0] - started) * 1000, 3),
            "model_ms": round((model_done - started) * 1000, 3),
        }
        try:
            await self._persist(p)
        except NotFound as exc:  # e.g. the conversation was deleted while the model ran
            if not streaming:
                raise
            failure, error = self._fail(body, exc), exc
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
        if failure is not None:
            yield AgentLoop.failed(failure, body)
        else:
            yield loop.outcome(body)

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
    def _finish(body: dict[str, Any], loop: AgentLoop) -> None:
        """Write the loop's result on the response body."""
        body["output"] = loop.items
        body["status"] = loop.status
        if loop.incomplete_reason is not None:
            body["incomplete_details"] = {"reason": loop.incomplete_reason}
        body["usage"] = usage_object(loop.usage)
        extra = report_metadata(loop.reports[-1], body["model"]) if loop.reports else {}
        if extra:
            body["metadata"] = {**body["metadata"], **extra}

    @staticmethod
    def _fail(body: dict[str, Any], exc: Exception) -> ErrorInfo:
        info = classify(exc)
        body["status"] = "failed"
        body["output"] = []
        body["usage"] = None
        body["error"] = error_object(info)
        return info

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
