"""``/connections``: Foundry's connections as azure-ai-projects reads them (list, get),
plus cupola's management extensions (PUT to create or replace, DELETE).

Secrets go in (PUT) and never come out: every reply carries ``credentials: {"type"}`` only,
and ``getConnectionWithCredentials`` is refused with 403.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.exceptions import UserError
from cupola.secrets import SecretBox
from cupola.server.http import JSONResponse, parse_body
from cupola.server.objects import connection_object
from cupola.server.openapi import Query, api
from cupola.server.schemas.objects import Connection, ConnectionDeleted, ConnectionList
from cupola.server.services import Services

FILTERS = (
    Query("connectionType", {"type": "string"}, "Only connections of this type."),
    Query("defaultConnection", {"type": "boolean"}, "Only the default connection."),
)


class SecretsNotReturned(UserError):
    """Asked for a connection's stored secret, which cupola never returns (HTTP 403)."""

    status_code = 403
    error_type = "permission_error"


class PutConnection(BaseModel):
    """The body of ``PUT /connections/{name}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = None
    """Optional; when given it must be the name in the path."""
    id: str | None = None
    """Ignored (a connection keeps its id when replaced); accepted so a GET reply can be
    sent back with new credentials."""
    type: str
    target: str
    credentials: dict[str, Any]
    metadata: dict[str, str] | None = None
    is_default: StrictBool = Field(default=False, alias="isDefault")


def _flag(request: Request, name: str) -> bool:
    raw = (request.query_params.get(name) or "").lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise UserError(f"{name} must be true or false", param=name, code="invalid_value")


def routes(s: Services) -> list[Route]:
    if not s.store.has_secret_box:
        s.store.use_secret_box(SecretBox.from_settings(s.settings))

    @api(response=ConnectionList, query=FILTERS)
    async def list_connections(request: Request) -> Response:
        """List connections (credentials without secrets)."""
        found = await s.store.list_connections(
            s.project(request),
            connection_type=request.query_params.get("connectionType") or None,
            default_only=_flag(request, "defaultConnection"),
        )
        return JSONResponse({"value": [connection_object(c) for c in found]})

    @api(response=Connection)
    async def get_connection(request: Request) -> Response:
        """Get a connection (credentials without secrets)."""
        found = await s.store.get_connection(s.project(request), request.path_params["name"])
        return JSONResponse(connection_object(found))

    @api(response=Connection)
    async def get_with_credentials(request: Request) -> Response:
        """Refused: cupola never returns stored secrets (403)."""
        found = await s.store.get_connection(s.project(request), request.path_params["name"])
        raise SecretsNotReturned(
            f"cupola never returns stored secrets (connection {found.name!r}): tools name the "
            "connection (project_connection_id) and the server adds its credential to their "
            "requests",
            param="name",
            code="secrets_not_returned",
        )

    @api(body=PutConnection, response=Connection)
    async def put_connection(request: Request) -> Response:
        """Create or replace a connection (cupola extension)."""
        project = s.project(request)
        body = await parse_body(request, PutConnection)
        connection, _created = await s.connections.put(
            project,
            request.path_params["name"],
            type=body.type,
            target=body.target,
            credentials=body.credentials,
            metadata=body.metadata,
            is_default=body.is_default,
            named=body.name,
        )
        return JSONResponse(connection_object(connection))

    @api(response=ConnectionDeleted)
    async def delete_connection(request: Request) -> Response:
        """Delete a connection and its secret (cupola extension)."""
        deleted = await s.store.delete_connection(s.project(request), request.path_params["name"])
        return JSONResponse({"name": deleted.name, "deleted": True})

    one = "/connections/{name}"
    return [
        Route("/connections", list_connections, methods=["GET"]),
        Route(one, get_connection, methods=["GET"]),
        Route(one, put_connection, methods=["PUT"]),
        Route(one, delete_connection, methods=["DELETE"]),
        Route(one + "/getConnectionWithCredentials", get_with_credentials, methods=["POST"]),
    ]
