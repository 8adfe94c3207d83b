"""Who may do what: the role each route needs, in one table, checked after routing.

An API key belongs to one project and has one role (:class:`~cupola.domain.Role`, each
including the ones below it). :func:`guard_routes` wraps every route of the app so that a
request with a key is refused (403, OpenAI error shape) when the key is of another project or
its role is below the route's. The role comes from :data:`ROLES`, keyed by method and path
(relative to ``/api/projects/{project}``; ``/v1`` is ``/openai/v1`` of the default project);
**a route the table does not list needs the admin role**, so a new route is never
accidentally open to every key. Without a key (a server that needs none: local
development) every route is open.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Mount, Route

from cupola.domain import ApiKey, Role
from cupola.server.middleware import KEY_SCOPE, ASGIApp, Receive, Scope, Send, send_error

R, U, C = Role.READER, Role.USER, Role.CONTRIBUTOR
_OAI = "/openai/v1"
_VS = _OAI + "/vector_stores/{vector_store_id}"
_CONV = _OAI + "/conversations/{conversation_id}"
_BOX = "/toolboxes/{name}"

ROLES: dict[tuple[str, str], Role] = {
    # Responses, chat completions, messages: running agents and models
    ("POST", _OAI + "/responses"): U,
    ("GET", _OAI + "/responses/{response_id}"): R,
    ("DELETE", _OAI + "/responses/{response_id}"): U,
    ("POST", _OAI + "/responses/{response_id}/cancel"): U,
    ("GET", _OAI + "/responses/{response_id}/input_items"): R,
    ("GET", _OAI + "/responses/{response_id}/trace"): R,
    ("POST", _OAI + "/chat/completions"): U,
    ("POST", "/anthropic/v1/messages"): U,
    ("POST", "/anthropic/v1/messages/count_tokens"): U,
    ("GET", _OAI + "/models"): R,
    ("GET", _OAI + "/models/{model_id}"): R,
    # conversations
    ("POST", _OAI + "/conversations"): U,
    ("GET", _CONV): R,
    ("POST", _CONV): U,
    ("DELETE", _CONV): U,
    ("POST", _CONV + "/items"): U,
    ("GET", _CONV + "/items"): R,
    ("GET", _CONV + "/items/{item_id}"): R,
    ("DELETE", _CONV + "/items/{item_id}"): U,
    # files, vector stores (searching one is reading it), containers
    ("POST", _OAI + "/files"): U,
    ("GET", _OAI + "/files"): R,
    ("GET", _OAI + "/files/{file_id}"): R,
    ("DELETE", _OAI + "/files/{file_id}"): U,
    ("GET", _OAI + "/files/{file_id}/content"): R,
    ("POST", _OAI + "/vector_stores"): U,
    ("GET", _OAI + "/vector_stores"): R,
    ("GET", _VS): R,
    ("POST", _VS): U,
    ("DELETE", _VS): U,
    ("POST", _VS + "/search"): R,
    ("POST", _VS + "/files"): U,
    ("GET", _VS + "/files"): R,
    ("GET", _VS + "/files/{file_id}"): R,
    ("POST", _VS + "/files/{file_id}"): U,
    ("DELETE", _VS + "/files/{file_id}"): U,
    ("GET", _VS + "/files/{file_id}/content"): R,
    ("POST", _VS + "/file_batches"): U,
    ("GET", _VS + "/file_batches/{batch_id}"): R,
    ("POST", _VS + "/file_batches/{batch_id}/cancel"): U,
    ("GET", _VS + "/file_batches/{batch_id}/files"): R,
    ("GET", _OAI + "/containers"): R,
    ("GET", _OAI + "/containers/{container_id}"): R,
    ("DELETE", _OAI + "/containers/{container_id}"): U,
    ("GET", _OAI + "/containers/{container_id}/files"): R,
    ("GET", _OAI + "/containers/{container_id}/files/{file_id}"): R,
    ("DELETE", _OAI + "/containers/{container_id}/files/{file_id}"): U,
    ("GET", _OAI + "/containers/{container_id}/files/{file_id}/content"): R,
    # agents: versions are what runs, so changing them is a contributor's
    ("GET", "/agents"): R,
    ("GET", "/agents/{agent_name}"): R,
    ("DELETE", "/agents/{agent_name}"): C,
    ("POST", "/agents/{agent_name}/versions"): C,
    ("GET", "/agents/{agent_name}/versions"): R,
    ("GET", "/agents/{agent_name}/versions/{agent_version}"): R,
    ("DELETE", "/agents/{agent_name}/versions/{agent_version}"): C,
    # traces of runs (cupola.telemetry)
    ("GET", "/traces"): R,
    ("GET", "/traces/{trace_id}"): R,
    ("GET", "/traces/export"): R,
    # run metrics, Prometheus text format (/metrics at the root too)
    ("GET", "/metrics"): R,
    # deployments (read only: cupola.yaml declares them)
    ("GET", "/deployments"): R,
    ("GET", "/deployments/{name}"): R,
    # connections: reading one's secret is for those who may set it
    ("GET", "/connections"): R,
    ("GET", "/connections/{name}"): R,
    ("PUT", "/connections/{name}"): C,
    ("DELETE", "/connections/{name}"): C,
    ("POST", "/connections/{name}/getConnectionWithCredentials"): C,
    # toolboxes; their MCP endpoint runs tools, as a response does
    ("GET", "/toolboxes"): R,
    ("GET", _BOX): R,
    ("PATCH", _BOX): C,
    ("DELETE", _BOX): C,
    ("POST", _BOX + "/versions"): C,
    ("GET", _BOX + "/versions"): R,
    ("GET", _BOX + "/versions/{version}"): R,
    ("DELETE", _BOX + "/versions/{version}"): C,
    # labels (agents and toolboxes alike): moving one is promoting, a contributor's
    **{
        (method, f"/{kind}/{{name}}/{tail}"): role
        for kind in ("agents", "toolboxes")
        for method, tail, role in (
            ("GET", "labels", R),
            ("GET", "labels/{label}", R),
            ("PUT", "labels/{label}", C),
            ("DELETE", "labels/{label}", C),
            ("GET", "label_history", R),
        )
    },
    ("GET", _BOX + "/mcp"): U,
    ("POST", _BOX + "/mcp"): U,
    ("DELETE", _BOX + "/mcp"): U,
}
"""(method, path under the project) -> the least role it needs. Unlisted: admin."""

UNLISTED = Role.ADMIN
_PROJECT_ROOT = "/api/projects/{project}"


def canonical_path(path: str) -> str:
    """A route's full path template as :data:`ROLES` keys it: relative to the project, the
    ``/v1`` alias spelled ``/openai/v1``."""
    if path.startswith(_PROJECT_ROOT + "/"):
        return path[len(_PROJECT_ROOT) :]
    if path.startswith("/v1/"):
        return _OAI + path[3:]
    return path


def required_role(method: str, path: str) -> Role:
    """The least role a request needs (``path`` as :func:`canonical_path` gives it)."""
    return ROLES.get(("GET" if method == "HEAD" else method, path), UNLISTED)


def _routes(routes: Iterable[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix + route.path, route))
    return found


def unlisted_routes(routes: Iterable[BaseRoute], open_paths: Iterable[str]) -> list[str]:
    """``METHOD path`` of every served route :data:`ROLES` does not list (admin only)."""
    skip = set(open_paths)
    out = []
    for path, route in _routes(routes):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            if path not in skip and (method, canonical_path(path)) not in ROLES:
                out.append(f"{method} {path}")
    return out


class RoleGuard:
    """One route's check: the request's key (if any) is of the project addressed and has
    the role the method needs."""

    def __init__(self, app: ASGIApp, path: str, methods: Iterable[str], project: str) -> None:
        self.app = app
        self.path = canonical_path(path)
        self.roles = {m: required_role(m, self.path) for m in methods}
        self.default_project = project

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key: ApiKey | None = scope.get(KEY_SCOPE)
        if key is not None:
            project = scope.get("path_params", {}).get("project", self.default_project)
            needed = self.roles.get(scope["method"], UNLISTED)
            if key.project != project:
                message = (
                    f"this API key belongs to project {key.project!r}, not {project!r}"
                    if isinstance(project, str)
                    else "this API key belongs to another project"
                )
                await send_error(scope, send, 403, message, "permission_error", "wrong_project")
                return
            if key.role < needed:
                await send_error(
                    scope,
                    send,
                    403,
                    f"{scope['method']} {self.path} needs the {needed.label} role; "
                    f"this API key has the {key.role.label} role",
                    "permission_error",
                    "insufficient_role",
                )
                return
        await self.app(scope, receive, send)


def guard_routes(routes: Iterable[BaseRoute], default_project: str) -> None:
    """Wrap every route's app in a :class:`RoleGuard` (a route mounted twice, as the
    ``/v1`` alias mounts the OpenAI routes, is wrapped once)."""
    seen: set[int] = set()
    for path, route in _routes(routes):
        if id(route) in seen:
            continue
        seen.add(id(route))
        route.app = RoleGuard(route.app, path, route.methods or set(), default_project)
