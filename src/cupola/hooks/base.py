"""Hooks: cross-cutting behaviour around a run, without editing the loop.

A hook is a :class:`RunHooks` subclass that overrides the methods it needs (every method is
an async no-op by default). The runtime calls them at five places of every run, whatever the
protocol (Responses, stored or not, streamed or not, in the background; Chat Completions;
Anthropic Messages):

- :meth:`RunHooks.on_run_start` before the first model call,
- :meth:`RunHooks.on_model_start` / :meth:`RunHooks.on_model_end` around each model call
  (the end sees the call's :class:`~cupola.models.base.Finish`, or the error it failed with),
- :meth:`RunHooks.on_tool_start` / :meth:`RunHooks.on_tool_end` around each server-side tool
  call (the end sees the item the tool produced),
- :meth:`RunHooks.on_item` on each output item, once it is final, in output order,
- :meth:`RunHooks.on_run_end` when the run has ended (and, for stored responses, after it
  has been persisted), with its :class:`RunEnd`: status, items, usage and the report of
  every model call.

Hooks are registered once per app (``build_services(settings, hooks=[...])``) and called in
the order given, after :class:`ModelCallLog`, the default hook. They run inline, in the
run's task: a slow hook slows the run.

Errors: a hook that raises :class:`RunStopped` (anywhere but ``on_run_end``) ends the run
there (a stored response fails with the exception's code and message; Chat Completions and
Messages answer it as a 4xx, or as an error event once the stream has begun). This is the
door guardrails will use. Any other exception a hook raises is logged (``cupola.hooks``, with
its traceback) and ignored: a broken tracer never fails a user's response.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cupola.domain.records import Item
from cupola.exceptions import UserError
from cupola.hooks.records import ModelCall, ModelEnd, RunEnd, RunInfo, ToolRun

log = logging.getLogger("cupola.hooks")


class RunStopped(UserError):
    """Raised by a hook to end the run (a guardrail that trips). ``code`` names the reason;
    the message is what the client reads."""

    status_code = 400
    error_type = "invalid_request_error"


class RunHooks:
    """Override what you need; each method is awaited inline and does nothing by default."""

    async def on_run_start(self, run: RunInfo) -> None:
        """Before the first model call (and before approved tool calls run)."""

    async def on_model_start(self, call: ModelCall) -> None:
        """Before the model is called."""

    async def on_model_end(self, call: ModelCall, end: ModelEnd) -> None:
        """After the model's reply ended, or failed (``end.error``). Not called for a call
        cut short by cancellation: ``on_run_end`` then says ``cancelled``."""

    async def on_tool_start(self, tool: ToolRun) -> None:
        """Before a server-side tool call runs."""

    async def on_tool_end(self, tool: ToolRun, item: Item) -> None:
        """After it ran: ``item`` is what it produced (its error too, for a failed call)."""

    async def on_item(self, run: RunInfo, item: Item) -> None:
        """On each output item, once final: messages and function calls at the end of their
        model turn, tool items as their tool ends, approval requests as they are made."""

    async def on_run_end(self, run: RunInfo, end: RunEnd) -> None:
        """After the run ended (a stored response has been saved). Nothing can be stopped
        any more: an exception here, ``RunStopped`` included, is logged and ignored."""


_METHODS = (
    "on_run_start",
    "on_model_start",
    "on_model_end",
    "on_tool_start",
    "on_tool_end",
    "on_item",
    "on_run_end",
)


class Hooks:
    """An app's hooks, as the runtime calls them: in order, each guarded (see the module
    doc: :class:`RunStopped` ends the run, any other exception is logged and ignored, as a
    hook is plugin code whose bug must not fail the run; the guard is written out in each
    method, as a wrapping coroutine per call would cost more than a no-op hook). Only the
    hooks that override a method are called for it, so a method no hook uses costs the run
    nothing; the ``*_used`` flags let the loop skip building its arguments."""

    def __init__(self, hooks: Sequence[RunHooks] = ()) -> None:
        self.hooks = tuple(hooks)
        by: dict[str, tuple[RunHooks, ...]] = {
            name: tuple(
                h for h in self.hooks if getattr(type(h), name) is not getattr(RunHooks, name)
            )
            for name in _METHODS
        }
        self._run_start = by["on_run_start"]
        self._model_start = by["on_model_start"]
        self._model_end = by["on_model_end"]
        self._tool_start = by["on_tool_start"]
        self._tool_end = by["on_tool_end"]
        self._item = by["on_item"]
        self._run_end = by["on_run_end"]
        self.run_start_used = bool(self._run_start)
        self.model_used = bool(self._model_start or self._model_end)
        self.tool_used = bool(self._tool_start or self._tool_end)
        self.item_used = bool(self._item)
        self.run_end_used = bool(self._run_end)

    async def run_start(self, run: RunInfo) -> None:
        for hook in self._run_start:
            try:
                await hook.on_run_start(run)
            except RunStopped:
                raise
            except Exception:  # plugin code, logged with its traceback by _failed
                _failed(hook, "on_run_start")

    async def model_start(self, call: ModelCall) -> None:
        for hook in self._model_start:
            try:
                await hook.on_model_start(call)
            except RunStopped:
                raise
            except Exception:  # plugin code, logged with its traceback by _failed
                _failed(hook, "on_model_start")

    async def model_end(self, call: ModelCall, end: ModelEnd) -> None:
        for hook in self._model_end:
            try:
                await hook.on_model_end(call, end)
            except RunStopped:
                raise
            except Exception:  # plugin code, logged with its traceback by _failed
                _failed(hook, "on_model_end")

    async def tool_start(self, tool: ToolRun) -> None:
        for hook in self._tool_start:
            try:
                await hook.on_tool_start(tool)
            except RunStopped:
                raise
            except Exception:  # plugin code, logged with its traceback by _failed
                _failed(hook, "on_tool_start")

    async def tool_end(self, tool: ToolRun, item: Item) -> None:
        for hook in self._tool_end:
            try:
                await hook.on_tool_end(tool, item)
            except RunStopped:
                raise
            except Exception:  # plugin code, logged with its traceback by _failed
                _failed(hook, "on_tool_end")

    async def item(self, run: RunInfo, item: Item) -> None:
        for hook in self._item:
            try:
                await hook.on_item(run, item)
            except RunStopped:
                raise
            except Exception:  # plugin code, logged with its traceback by _failed
                _failed(hook, "on_item")

    async def run_end(self, run: RunInfo, end: RunEnd) -> None:
        for hook in self._run_end:
            try:
                await hook.on_run_end(run, end)
            except Exception:  # RunStopped too: the run has ended, nothing is left to stop
                _failed(hook, "on_run_end")


def _failed(hook: RunHooks, method: str) -> None:
    """Log the exception a hook raised (any but :class:`RunStopped`), which is ignored."""
    log.exception("hook %s.%s failed (ignored)", type(hook).__name__, method)


NO_HOOKS = Hooks()
