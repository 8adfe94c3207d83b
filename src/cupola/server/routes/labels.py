"""Labels of versioned resources (a cupola extension): a label points an agent or toolbox name
at one version (``prod``, ``staging`` ...; a toolbox's ``default`` is one); promotion moves it.

``GET  /{agents|toolboxes}/{name}/labels``                the labels, by name
``GET  /{agents|toolboxes}/{name}/labels/{label}``        one label
``PUT  /{agents|toolboxes}/{name}/labels/{label}``        ``{"version": "3"}``: set or move it
``DELETE /{agents|toolboxes}/{name}/labels/{label}``      remove it (204)
``GET  /{agents|toolboxes}/{name}/label_history``         every move, newest first
                                                          (``?label=``, ``limit``, ``order``,
                                                          ``after``/``before`` a move id)

``latest`` is implicit (the highest version) and cannot be set. A version a label points at
cannot be deleted while the resource has other versions.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.exceptions import UserError
from cupola.server.http import JSONResponse, list_envelope, parse_body, query_int, query_order
from cupola.server.objects import label_move_object, label_object
from cupola.server.openapi import LABEL, PAGE_BOTH_WAYS, Query, api
from cupola.server.schemas.objects import LabelMovePage, LabelObject, LabelPage
from cupola.server.services import Services
from cupola.store.agents import AGENT
from cupola.store.toolboxes import TOOLBOX
from cupola.store.versions import Kind

ONE = {"label": LABEL}
LABEL_FILTER = Query("label", {"type": "string"}, "Only the moves of this label.")


class SetLabel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StrictStr | StrictInt
    """The version number the label points at (``"3"`` or ``3``)."""


def _cursor(request: Request, key: str) -> int | None:
    raw = request.query_params.get(key)
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise UserError(f"{key} must be a label move id (a number)", param=key)
    return int(raw)


def _routes_for(s: Services, kind: Kind, prefix: str) -> list[Route]:
    noun = kind.noun

    @api(response=LabelPage, summary=f"List a {noun}'s labels.")
    async def list_labels(request: Request) -> Response:
        project, name = s.project(request), request.path_params["name"]
        found = await s.labels.list_labels(project, kind, name)
        data = [label_object(kind.kind, label) for label in found]
        return JSONResponse(list_envelope(data, False))

    @api(response=LabelObject, path=ONE, summary=f"Get one label of a {noun}.")
    async def get_label(request: Request) -> Response:
        found = await s.labels.get_label(
            s.project(request), kind, request.path_params["name"], request.path_params["label"]
        )
        return JSONResponse(label_object(kind.kind, found))

    @api(body=SetLabel, response=LabelObject, path=ONE, summary=f"Set or move a label of a {noun}.")
    async def set_label(request: Request) -> Response:
        project = s.project(request)
        body = await parse_body(request, SetLabel)
        label = await s.labels.set_label(
            project, kind, request.path_params["name"], request.path_params["label"], body.version
        )
        return JSONResponse(label_object(kind.kind, label))

    @api(status=204, path=ONE, summary=f"Remove a label of a {noun}.")
    async def remove_label(request: Request) -> Response:
        await s.labels.remove_label(
            s.project(request), kind, request.path_params["name"], request.path_params["label"]
        )
        return Response(status_code=204)

    @api(
        response=LabelMovePage,
        query=(*PAGE_BOTH_WAYS, LABEL_FILTER),
        summary=f"Every move of a {noun}'s labels, for audit.",
    )
    async def label_history(request: Request) -> Response:
        page = await s.labels.history(
            s.project(request),
            kind,
            request.path_params["name"],
            label=request.query_params.get("label") or None,
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=_cursor(request, "after"),
            before=_cursor(request, "before"),
        )
        data = [label_move_object(kind.kind, move) for move in page.data]
        return JSONResponse(list_envelope(data, page.has_more))

    one = f"{prefix}/{{name}}/labels/{{label}}"
    return [
        Route(f"{prefix}/{{name}}/labels", list_labels, methods=["GET"]),
        Route(one, get_label, methods=["GET"]),
        Route(one, set_label, methods=["PUT"]),
        Route(one, remove_label, methods=["DELETE"]),
        Route(f"{prefix}/{{name}}/label_history", label_history, methods=["GET"]),
    ]


def routes(s: Services) -> list[Route]:
    """Label routes for agents and toolboxes (under a project)."""
    return [*_routes_for(s, AGENT, "/agents"), *_routes_for(s, TOOLBOX, "/toolboxes")]
