"""``GET /metrics``: the run metrics in the Prometheus text format (cupola.telemetry.metrics,
docs/observability.md). Served at the server's root, where Prometheus scrapes by default, and
under ``/api/projects/{project}``; both need the reader role of the server's project when
the server needs keys."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.server.openapi import api
from cupola.server.services import Services
from cupola.telemetry.metrics import MetricsHooks


def registry_of(s: Services) -> CollectorRegistry:
    """The registry of the app's metrics hook (an empty one when the runner has none)."""
    for hook in s.runner.hooks.hooks:
        if isinstance(hook, MetricsHooks):
            return hook.registry
    return CollectorRegistry()


def routes(s: Services) -> list[Route]:
    registry = registry_of(s)

    @api(response="binary", summary="Run metrics in the Prometheus text format")
    async def metrics(request: Request) -> Response:
        """Runs by status, run duration and time to first token, tokens, estimated cost and
        tool calls, per project, agent, agent version and deployment."""
        s.project(request)  # an unknown project is a 404
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", metrics, methods=["GET"])]
