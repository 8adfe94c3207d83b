"""What the routes share: one object built by ``create_app``, never a module global."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from cupola.domain import ApiKey, Role
from cupola.exceptions import NotFound
from cupola.models.registry import ModelRegistry
from cupola.runtime.runner import Runner
from cupola.runtime.services.agents import AgentService
from cupola.runtime.services.connections import ConnectionService
from cupola.runtime.services.files import FileService
from cupola.runtime.services.labels import LabelService
from cupola.runtime.services.responses import ResponseService
from cupola.runtime.services.toolboxes import ToolboxService
from cupola.server.middleware import KEY_SCOPE
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
    agents: AgentService
    toolboxes: ToolboxService
    labels: LabelService
    files: FileService
    connections: ConnectionService
    telemetry: Telemetry | None = None
    """Tracing (None when ``telemetry.enabled`` is off)."""
    responses: ResponseService = field(init=False)
    """Runs responses (and Chat Completions and Messages requests) over ``runner``."""

    def __post_init__(self) -> None:
        self.responses = ResponseService(self.runner)

    def project(self, request: Request) -> str:
        """The project a request addresses (``/v1`` is the default project)."""
        project: str = request.path_params.get("project", self.settings.project)
        if project != self.settings.project:
            raise NotFound(f"project {project!r} not found", param="project", code="not_found")
        return project

    def may_start_processes(self, request: Request) -> bool:
        """Whether the caller may define tools that start a process on the server: an
        admin's key, or no key at all (a server that needs none: local development)."""
        key: ApiKey | None = request.scope.get(KEY_SCOPE)
        return key is None or key.role >= Role.ADMIN
