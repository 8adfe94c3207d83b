"""The traces pages: a filterable list of runs and a trace as a waterfall, read from the
traces API (``/traces``, ``/responses/{id}/trace``: docs/observability.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cupola.console.api import ApiError, Caller
from cupola.console.waterfall import waterfall

if TYPE_CHECKING:
    from cupola.console.app import Console

FILTERS = ("agent_name", "agent_version", "conversation_id", "response_id", "status")
"""The list's filters, passed to ``GET /traces`` as they are."""
STATUSES = ("completed", "incomplete", "failed", "cancelled")


class TracePages:
    def __init__(self, console: Console, prefix: str) -> None:
        self.console = console
        self.api = console.api
        self.prefix = prefix

    async def runs(self, request: Request, caller: Caller) -> Response:
        chosen = {k: request.query_params.get(k, "").strip() for k in FILTERS}
        query: dict[str, str | int] = {k: v for k, v in chosen.items() if v}
        after = request.query_params.get("after")
        if after:
            query["after"] = after
        found = await self.api.get(caller, self.api.path("traces"), limit=50, **query)
        return self.console.render(
            request,
            "traces.html",
            title="Traces",
            runs=found["data"],
            chosen=chosen,
            statuses=STATUSES,
            next_after=found["last_id"] if found.get("has_more") else None,
            query={k: v for k, v in chosen.items() if v},
        )

    async def trace(self, request: Request, caller: Caller) -> Response:
        trace_id = request.path_params["trace_id"]
        found = await self.api.get(caller, self.api.path("traces", trace_id))
        rows, total_ms = waterfall(found["spans"])
        root = rows[0].span if rows else {}
        return self.console.render(
            request,
            "trace.html",
            title=f"Trace {trace_id}",
            trace=found,
            rows=rows,
            total_ms=total_ms,
            root_attributes=root.get("attributes", {}),
        )

    async def response_trace(self, request: Request, caller: Caller) -> Response:
        """A response's trace: its waterfall, or why there is none (yet)."""
        response_id = request.path_params["id"]
        path = self.api.path("openai", "v1", "responses", response_id, "trace")
        try:
            found = await self.api.get(caller, path)
        except ApiError as error:
            if error.status != 404:
                raise
            return self.console.render(
                request,
                "error.html",
                status=404,
                title="No trace",
                error=ApiError(
                    404,
                    f"no trace of {response_id} is stored (yet: spans are written a moment "
                    "after a run ends; reload to try again)",
                    None,
                ),
            )
        return RedirectResponse(f"{self.prefix}/traces/{found['id']}", status_code=303)

    def routes(self) -> list[Route]:
        guard, prefix = self.console.guard, self.prefix
        return [
            Route(prefix + "/traces", guard(self.runs), methods=["GET"]),
            Route(prefix + "/traces/{trace_id}", guard(self.trace), methods=["GET"]),
            Route(prefix + "/responses/{id}/trace", guard(self.response_trace), methods=["GET"]),
        ]


def routes(console: Console, prefix: str) -> list[Route]:
    """The traces pages under ``prefix``."""
    return TracePages(console, prefix).routes()
