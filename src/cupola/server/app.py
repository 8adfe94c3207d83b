"""``create_app(settings)``: the ASGI application."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from cupola.console import ConsoleConfig, with_console
from cupola.models.registry import ModelRegistry
from cupola.runtime.hooks import Hooks, ModelCallLog, RunHooks
from cupola.runtime.runner import Runner
from cupola.runtime.services.agents import AgentService
from cupola.runtime.services.connections import ConnectionService
from cupola.runtime.services.files import FileService
from cupola.runtime.services.labels import LabelService
from cupola.runtime.services.toolboxes import ToolboxService
from cupola.secrets import SecretBox, install_redaction
from cupola.server.access import guard_routes
from cupola.server.boundary import ErrorBoundary
from cupola.server.errors import EXCEPTION_HANDLERS
from cupola.server.middleware import RequestContext
from cupola.server.openapi import mcp_api
from cupola.server.routes import (
    agents,
    anthropic,
    chat,
    connections,
    containers,
    conversations,
    deployments,
    export,
    files,
    labels,
    meta,
    metrics,
    model_list,
    responses,
    toolboxes,
    traces,
)
from cupola.server.services import Services
from cupola.server.toolbox_mcp import ToolboxMcp
from cupola.settings import Settings, is_loopback_host
from cupola.store import SqlStore
from cupola.store.connections import ConnectionSecrets
from cupola.telemetry import Telemetry, TraceContext
from cupola.telemetry.metrics import MetricsHooks
from cupola.tools.code_interpreter import check_sandbox
from cupola.tools.registry import ToolEnv

log = logging.getLogger("cupola.server")


def keys_required(settings: Settings) -> bool:
    return settings.keys_required


def build_services(
    settings: Settings,
    store: SqlStore | None = None,
    models: ModelRegistry | None = None,
    *,
    hooks: Sequence[RunHooks] = (),
) -> Services:
    """The app's services. ``hooks`` run around every run, after the model-call log line
    (runtime/hooks.py)."""
    store = store or SqlStore(settings.resolved_database_url)
    box = SecretBox.from_settings(settings)  # the key loads on first use
    store.use_secret_box(box)
    install_redaction(box)
    secrets = ConnectionSecrets(store)  # tools' and deployments' credentials alike
    models = models or ModelRegistry(settings, secrets=secrets)
    tools = ToolEnv(settings, store, secrets=secrets)
    telemetry = (
        Telemetry(settings, store, redact=box.registry.redact)
        if settings.telemetry.enabled
        else None
    )
    metered = MetricsHooks.from_deployments(settings.deployments)  # GET /metrics
    hooks = [*(telemetry.hooks if telemetry else ()), metered, *hooks]
    runner = Runner(
        store,
        models,
        settings.default_model,
        tools,
        max_item_bytes=settings.server.max_item_bytes,
        hooks=Hooks([ModelCallLog(), *hooks]),
    )
    return Services(
        settings,
        store,
        models,
        runner,
        tools,
        agents=AgentService(store, models, tools),
        toolboxes=ToolboxService(store, tools.normalize_entry),
        labels=LabelService(store),
        files=FileService(store, settings.max_file_bytes),
        connections=ConnectionService(store),
        telemetry=telemetry,
    )


def create_app(settings: Settings, services: Services | None = None) -> Any:
    """The cupola ASGI app. The store is migrated when the app starts."""
    s = services or build_services(settings)
    toolbox_mcp = ToolboxMcp(s)
    openai_routes = [
        *responses.routes(s),
        *conversations.routes(s),
        *files.routes(s),
        *containers.routes(s),
        *chat.routes(s),
        *model_list.routes(s),
        *traces.response_routes(s),
    ]
    anthropic_routes = anthropic.routes(s)
    project_routes: list[BaseRoute] = [
        Mount("/openai/v1", routes=openai_routes),
        Mount("/anthropic", routes=anthropic_routes),
        *agents.routes(s),
        *deployments.routes(s),
        *connections.routes(s),
        *toolboxes.routes(s),
        *labels.routes(s),
        *export.routes(s),  # before /traces/{trace_id}
        *traces.routes(s),
        *metrics.routes(s),
        Route("/toolboxes/{name}/mcp", mcp_api(toolbox_mcp), methods=["GET", "POST", "DELETE"]),
    ]
    routes: list[BaseRoute] = [
        Mount("/api/projects/{project}", routes=project_routes),
        Mount("/v1", routes=openai_routes),
        Mount("/anthropic", routes=anthropic_routes),
        *metrics.routes(s),
    ]
    served: list[BaseRoute] = []  # meta's OpenAPI document describes this final list
    served += [*meta.routes(served), *routes]
    guard_routes(served, settings.project)  # the role each route needs (server/access.py)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await s.store.open()
        await check_sandbox(settings.code_interpreter, settings.data_dir)  # warns if unsafe
        if s.telemetry is not None:
            await s.telemetry.start()
        try:
            async with toolbox_mcp.running():
                yield
        finally:
            await s.runner.aclose()
            if s.telemetry is not None:  # flushes queued spans while the store is open
                await s.telemetry.aclose()
            await s.tools.aclose()
            await s.models.aclose()
            await s.store.close()

    app = Starlette(
        routes=served,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(ErrorBoundary)],
        lifespan=lifespan,
    )
    app.state.max_body_bytes = settings.server.max_body_bytes
    app.state.services = s
    require_key = settings.keys_required
    served_app = RequestContext(
        app,
        require_key=require_key,
        check_key=s.store.verify_key,
        cache_seconds=settings.auth.key_cache_seconds,
        cors_origins=settings.server.cors_origins,
        loopback_hosts_only=not require_key and is_loopback_host(settings.server.host),
        access_log=settings.server.access_log,  # one line per request (server/access_log.py)
    )
    traced: Any = TraceContext(served_app) if s.telemetry is not None else served_app
    # the web console at /console, beside the API (it calls the API in-process with its key)
    return with_console(traced, ConsoleConfig(settings.project, require_key))
