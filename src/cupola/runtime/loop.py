"""One response's agent loop: call the model; run the server-side tools it calls; call it
again with their results, until it answers, calls a client function or needs approval."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson

from cupola.exceptions import CupolaError, ProviderError
from cupola.models.base import CallReport, ChatMessage, Finish, TextDelta, ToolCall, Usage
from cupola.runtime.events import Event, OutputAssembler
from cupola.runtime.prepare import Prepared
from cupola.runtime.response import report_metadata, usage_object
from cupola.runtime.tooling import MAX_ROUNDS, ServerFunctions, add_usage, rendered_messages
from cupola.tools.base import ToolContext, Toolset
from cupola.tools.registry import ToolEnv

models_log = logging.getLogger("cupola.models")
"""One line per model call: what the wrappers did (the trace, until tracing lands)."""


class AgentLoop:
    def __init__(
        self, p: Prepared, output: OutputAssembler, clock: list[float], tools: ToolEnv | None
    ) -> None:
        self.p = p
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
        self.report: CallReport | None = None
        """The last model call's report (recorded in the response metadata)."""

    async def run(self) -> AsyncIterator[Event]:
        """Yield events as they happen; leave the outcome on the response body."""
        if self.tools is not None and self.p.server_tools:
            self.toolsets = await self.tools.toolsets(self.p.server_tools, self.p.project)
        try:
            await self._start()
            for event in self.output.log.drain():
                yield event
            status = "incomplete"
            for _round in range(MAX_ROUNDS):
                finish: list[Finish] = []
                async for event in self._model_turn(finish):
                    yield event
                status = "incomplete" if finish[0].reason == "length" else "completed"
                text, client_calls, server_calls = self.output.end_round(status)
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
        extra = report_metadata(self.report, body["model"]) if self.report else {}
        if extra:
            body["metadata"] = {**body["metadata"], **extra}

    async def _start(self) -> None:
        """Open the toolsets, then run the calls the client approved in this request."""
        for toolset in self.toolsets:
            for item in await toolset.start(self.ctx):
                self.output.add(item)
        self.offered = ServerFunctions(self.toolsets, {f.name for f in self.p.model_request.tools})
        for request in self.p.approved:
            toolset = self.offered.by_label(request["server_label"])
            call = ToolCall(request["id"], request["name"], request.get("arguments") or "{}")
            item = await toolset.run(call, self.ctx, approval_request_id=request["id"])
            self.output.add(item)
            self.messages += rendered_messages(call, item)

    async def _model_turn(self, finish: list[Finish]) -> AsyncIterator[Event]:
        base = self.p.model_request
        request = replace(
            base,
            messages=tuple(self.messages),
            tools=(*base.tools, *self.offered.specs) if base.tool_choice != "none" else (),
        )
        started = time.perf_counter()
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
        except CupolaError as exc:
            self._log_call(started, error=exc)
            raise
        self.usage = add_usage(self.usage, finish[0].usage)
        self.report = finish[0].report
        self._log_call(started, finish=finish[0])

    def _log_call(
        self, started: float, *, finish: Finish | None = None, error: CupolaError | None = None
    ) -> None:
        """The structured log line of one model call: WARNING when it failed, INFO when the
        wrappers did something (a retry, a fallback, a route, a changed parameter), DEBUG for
        a plain call (the response itself tells all of it; a line per request at INFO cost a
        fifth of the server's throughput under load)."""
        report = finish.report if finish is not None else None
        notable = report is not None and bool(
            report.attempts > 1 or report.failed_over or report.adjustments or report.route
        )
        if error is not None:
            level = logging.WARNING
        elif notable:
            level = logging.INFO
        else:
            level = logging.DEBUG
        if not models_log.isEnabledFor(level):
            return
        line: dict[str, object] = {
            "event": "model_call",
            "response_id": self.p.body["id"],
            "model": self.p.model.name,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if finish is not None:
            line["finish_reason"] = finish.reason
            line["usage"] = {
                "input": finish.usage.input_tokens,
                "output": finish.usage.output_tokens,
            }
            line["report"] = finish.report.as_dict()
            models_log.log(level, "%s", orjson.dumps(line).decode())
        elif error is not None:
            line["error"] = {"type": error.error_type, "code": error.code, "message": error.message}
            models_log.warning("%s", orjson.dumps(line).decode())

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
                self.output.add(toolset.approval_request(raw))
                stop = True
                continue
            item = await toolset.run(raw, self.ctx)
            self.output.add(item)
            self.messages += rendered_messages(call, item)[1:]
        return stop
