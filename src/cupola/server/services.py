"""What the routes share: one object built by ``create_app``, never a module global."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from cupola.exceptions import NotFound
from cupola.models.registry import ModelRegistry
from cupola.runtime.runner import Runner
from cupola.settings import Settings
from cupola.store import SqlStore
from cupola.telemetry import Telemetry
from cupola.tools.registry import ToolEnv


@dataclass(slots=True)
class Services:
    settings: Settings
    store: SqlStore
    models: ModelRegistry
    runner: Runner
    tools: ToolEnv
    telemetry: Telemetry | None = None
    """Tracing (None when ``telemetry.enabled`` is off)."""

    def project(self, request: Request) -> str:
        """The project a request addresses (``/v1`` is the default project)."""
        project: str = request.path_params.get("project", self.settings.project)
        if project != self.settings.project:
            raise NotFound(f"project {project!r} not found", param="project", code="not_found")
        return project
