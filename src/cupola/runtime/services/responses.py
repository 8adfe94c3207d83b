"""Running a response, as the routes (and the CLI) call it: one call per way a client can
ask, each answering with the body or with the run's typed events (runtime/events.py), which
the caller renders in its protocol.

- :meth:`ResponseService.create`: not streamed; the finished body, or, in the background,
  the queued body (the run goes on in a task of its own and can be polled or cancelled);
- :meth:`ResponseService.stream`: streamed; the events, ending with the
  :class:`~cupola.runtime.events.RunOutcome`. In the background the run survives the client
  leaving (:meth:`~cupola.runtime.runner.Runner.follow`); in the foreground it ends with it;
- :meth:`ResponseService.stateless`: a Chat Completions or Messages request, run once and
  never stored, with the same hooks and item cap.

Everything that can be refused is refused before the first event: a bad request raises
here, so the caller answers it as an HTTP error rather than inside a stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from cupola.runtime.events import RunEvent, RunOutcome
from cupola.runtime.hooks import Api
from cupola.runtime.prepare import Prepared
from cupola.runtime.request import CreateResponse, ModelOptions
from cupola.runtime.runner import Runner
from cupola.runtime.stateless import StatelessRun, Target, resolve_target


class ResponseService:
    """Creates, streams, cancels responses and runs stateless requests over one runner."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def create(self, project: str, req: CreateResponse) -> dict[str, Any]:
        """A request that does not stream: the finished response body, or the queued one
        when ``background``."""
        return await self.runner.create(project, req)

    async def stream(
        self, project: str, req: CreateResponse
    ) -> AsyncIterator[RunEvent | RunOutcome]:
        """A streamed request, prepared (and, in the background, stored as queued) before
        this returns; the events come as the run goes."""
        prepared = await self.runner.prepare(project, req)
        if prepared.background:  # runs to its end even if the client leaves
            await self.runner.save_queued(prepared)
            return self.runner.follow(prepared)
        return self.runner.run(prepared)

    async def cancel(self, project: str, response_id: str) -> dict[str, Any]:
        """Cancel a background response (a finished one is returned as it is)."""
        return await self.runner.cancel(project, response_id)

    async def target(self, project: str, model: str) -> Target:
        """What a Chat Completions or Messages client's ``model`` names: a deployment or an
        agent (``name`` or ``name:version``); else 404 ``model_not_found``."""
        runner = self.runner
        return await resolve_target(runner.store, runner.preparer.models, project, model)

    async def prepare(self, project: str, req: CreateResponse) -> Prepared:
        """Check and prepare a request without running it (to count its tokens ...)."""
        return await self.runner.prepare(project, req)

    async def stateless(
        self, project: str, req: CreateResponse, options: ModelOptions | None, api: Api
    ) -> StatelessRun:
        """A Chat Completions or Messages request, prepared and ready to run: call
        :meth:`StatelessRun.run` (not streamed) or :meth:`StatelessRun.events`."""
        prepared = await self.runner.prepare(project, req)
        if options is not None:
            prepared.use_options(options)
        return self.runner.stateless(prepared, api)
