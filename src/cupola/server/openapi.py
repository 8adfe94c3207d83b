"""The OpenAPI 3.1 document of the routes the app really serves.

Each endpoint carries its own :class:`Operation` (attached with :func:`api` where the route
is defined): the pydantic model its body is validated with, the model describing what it
answers, its query parameters. The document is generated from those models, so it says
what the server checks: a request body's schema *is* the model ``parse_body`` validates with,
and every ``$ref`` points into ``components/schemas``, where pydantic's definitions land.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from cupola import __version__
from cupola.server.schemas.common import AnthropicError, OpenAIError
from cupola.server.schemas.objects import JsonRpcMessage, McpError

E = TypeVar("E")
ATTRIBUTE = "__cupola_operation__"
REF_TEMPLATE = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")


@dataclass(frozen=True, slots=True)
class Query:
    """A query parameter an endpoint reads."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    allow_empty: bool = True
    """An empty value (``?limit=``) is taken as absent."""


LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size.")
ORDER = Query("order", {"type": "string", "enum": ["asc", "desc"]}, "Sort by creation time.")
AFTER = Query("after", {"type": "string"}, "A cursor: the last id of the previous page.")
BEFORE = Query("before", {"type": "string"}, "A cursor: the first id of the next page.")
PAGE = (LIMIT, ORDER, AFTER)
"""The query of a list that pages forward."""
PAGE_BOTH_WAYS = (LIMIT, ORDER, AFTER, BEFORE)
"""The query of a list that pages both ways."""

VERSION_NUMBER: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"}
"""A version number in a path (``/versions/3``)."""
VERSION_SELECTOR: dict[str, Any] = {
    "type": "string",
    "pattern": "^([0-9]+|[A-Za-z][A-Za-z0-9_.-]{0,63})$",
}
"""A version number or a label in a path (``/versions/3``, ``/versions/prod``)."""
LABEL: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"}
"""A label's name in a path."""

BINARY: Final = "binary"
"""``response=BINARY``: the endpoint answers raw bytes (a file's content)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says of one endpoint."""

    body: type[BaseModel] | None = None
    """The model a JSON body is validated with."""
    form: type[BaseModel] | None = None
    """The fields of a ``multipart/form-data`` body."""
    response: type[BaseModel] | Literal["binary"] | None = None
    """The model of the success body; None for no body."""
    status: int = 200
    stream: bool = False
    """The endpoint can also answer ``text/event-stream`` (when the body asks to stream)."""
    query: tuple[Query, ...] = ()
    errors: type[BaseModel] = OpenAIError
    """The shape of every 4xx answer."""
    statuses: tuple[int, ...] = ()
    """Further success statuses with no body (MCP's 202 for a notification)."""
    error_media: tuple[str, ...] = ()
    """Further content types of a 4xx, schema-less (the MCP transport's plain-text errors)."""
    summary: str | None = None
    """One line; the endpoint's docstring's first line when not given."""
    path: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Schemas of path parameters narrower than a string (a version number)."""


def api(
    *,
    body: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    response: type[BaseModel] | Literal["binary"] | None = None,
    status: int = 200,
    stream: bool = False,
    query: Iterable[Query] = (),
    errors: type[BaseModel] = OpenAIError,
    statuses: Iterable[int] = (),
    error_media: Iterable[str] = (),
    summary: str | None = None,
    path: Mapping[str, dict[str, Any]] | None = None,
) -> Callable[[E], E]:
    """Attach the endpoint's :class:`Operation`; use where the route is defined."""
    operation = Operation(
        body=body,
        form=form,
        response=response,
        status=status,
        stream=stream,
        query=tuple(query),
        errors=errors,
        statuses=tuple(statuses),
        error_media=tuple(error_media),
        summary=summary,
        path=tuple((path or {}).items()),
    )

    def attach(endpoint: E) -> E:
        setattr(endpoint, ATTRIBUTE, operation)
        return endpoint

    return attach


def anthropic_api(**kwargs: Any) -> Callable[[E], E]:
    """:func:`api` for endpoints that answer errors in Anthropic's shape."""
    return api(errors=AnthropicError, **kwargs)


_VERSION = "The toolbox version (a number or a label) to serve (default: its default label)."


def mcp_api(endpoint: E) -> E:
    """The operation of a toolbox's MCP endpoint (the streamable HTTP transport: JSON-RPC
    in, JSON or an event stream out, JSON-RPC errors)."""
    attach = api(
        body=JsonRpcMessage,
        response=JsonRpcMessage,
        stream=True,
        statuses=(202,),
        errors=McpError,
        error_media=("text/plain",),
        query=(Query("version", VERSION_SELECTOR, _VERSION, False),),
    )
    return attach(endpoint)


def operation_of(route: Route) -> Operation | None:
    found = getattr(route.endpoint, ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


# ---- walking the routes ----------------------------------------------------------------------


def walk(routes: Sequence[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    """Every Route under ``routes``, with its full path template."""
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += walk(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix + route.path, route))
    return found


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route of the app serves at the request's path (for a 405's
    ``Allow``). ``scope`` may come from inside a Mount: matching starts again at the top."""
    top = scope.get("app_root_path", scope.get("root_path", ""))
    return _methods(routes, {**scope, "root_path": top, "path_params": {}})


def _methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            methods.update(_methods(list(route.routes), {**scope, **child}))
        elif isinstance(route, Route) and route.methods:
            methods.update(route.methods)
    return sorted(methods)


# ---- the document ----------------------------------------------------------------------------


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _summary(route: Route, op: Operation) -> str:
    if op.summary:
        return op.summary
    doc = (route.endpoint.__doc__ or "").strip().splitlines()
    return doc[0].strip() if doc else route.name.replace("_", " ")


class _Schemas:
    """Collects every model an operation names, then renders them in one pass so that
    shared definitions land once in ``components/schemas``."""

    def __init__(self) -> None:
        self.wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> Any:
        """A placeholder for the model's schema, replaced once all are rendered."""
        self.wanted[(model, mode)] = None
        return (model, mode)

    def render(self) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
        if not self.wanted:
            return {}, {}
        mapping, defs = models_json_schema(list(self.wanted), ref_template=REF_TEMPLATE)
        return dict(mapping), dict(defs.get("$defs", {}))


def _error_responses(schema: Any, media: tuple[str, ...]) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    content.update({m: {"schema": {"type": "string"}} for m in media})
    return {
        "4XX": {"description": "Bad input, in the API's error shape", "content": content},
    }


def _operation(
    path: str, method: str, route: Route, op: Operation, schemas: _Schemas
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{_slug(path)}",
        "summary": _summary(route, op),
    }
    tag = "anthropic" if "/anthropic" in path else ("openai" if "/v1" in path else "foundry")
    out["tags"] = [tag]
    narrow = dict(op.path)
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": narrow.get(p, {"type": "string"})}
        for p in _PARAM.findall(path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "schema": q.schema}
        | ({"description": q.description} if q.description else {})
        | ({"allowEmptyValue": True} if q.allow_empty else {})
        for q in op.query
    ]
    if params:
        out["parameters"] = params
    takes_body = method in ("POST", "PUT", "PATCH")
    if op.body is not None and takes_body:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
        }
    elif op.form is not None and takes_body:
        out["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": schemas.ref(op.form, "validation")}},
        }
    success: dict[str, Any] = {"description": "OK"}
    content: dict[str, Any] = {}
    if op.response == BINARY:
        content["*/*"] = {"schema": {"type": "string", "format": "binary"}}
    elif op.response is not None:
        content["application/json"] = {"schema": schemas.ref(op.response, "serialization")}
    if op.stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    if content:
        success["content"] = content
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.statuses:
        responses[str(status)] = {"description": "Accepted, no body"}
    responses.update(_error_responses(schemas.ref(op.errors, "serialization"), op.error_media))
    out["responses"] = responses
    return out


def _resolve(node: Any, rendered: dict[Any, dict[str, Any]]) -> Any:
    """Replace the (model, mode) placeholders with the schemas pydantic rendered."""
    if isinstance(node, tuple):
        return rendered[node]
    if isinstance(node, dict):
        return {k: _resolve(v, rendered) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, rendered) for v in node]
    return node


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """An OpenAPI 3.1 document of ``routes`` (the app's final route list)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for path, route in walk(routes):
        op = operation_of(route)
        if op is None:
            raise RuntimeError(f"route {path} ({route.name}) has no OpenAPI operation")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                path, method, route, op, schemas
            )
    rendered, components = schemas.render()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cupola",
            "version": __version__,
            "description": (
                "Foundry-compatible agent platform: OpenAI Responses, Conversations, Files, "
                "Vector stores, Chat Completions and Models under "
                "/api/projects/{project}/openai/v1 (and /v1 for the default project), "
                "Anthropic Messages under /anthropic, Foundry REST under "
                "/api/projects/{project}."
            ),
        },
        "paths": _resolve(paths, rendered),
        "components": {"schemas": components},
    }
