"""``/containers``: the code interpreter's containers and the files its snippets wrote.

Containers are directories under ``<data_dir>/containers/<project>/``; file ids are hashes
of their paths, so nothing a client sends is ever used as a path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cupola.exceptions import NotFound
from cupola.server.http import JSONResponse, list_envelope, query_int, query_order
from cupola.server.openapi import BINARY, PAGE, Query, api
from cupola.server.schemas.common import Deleted
from cupola.server.schemas.objects import (
    ContainerFileObject,
    ContainerFilePage,
    ContainerObject,
    ContainerPage,
)
from cupola.server.services import Services
from cupola.tools.sandbox import Container, ContainerFile

_CHUNK = 256 * 1024


def _page(request: Request, data: list[dict[str, Any]]) -> dict[str, Any]:
    """``after``/``limit``/``order`` over objects sorted oldest first."""
    limit = query_int(request, "limit", 20)
    if query_order(request) == "desc":
        data = data[::-1]
    after = request.query_params.get("after")
    if after:
        ids = [entry["id"] for entry in data]
        if after not in ids:
            raise NotFound(f"{after!r} is not in this list", param="after")
        data = data[ids.index(after) + 1 :]
    return list_envelope(data[:limit], len(data) > limit)


async def _chunks(fd: int, size: int) -> AsyncIterator[bytes]:
    """``size`` bytes of ``fd`` (what content-length promised), then the descriptor closes."""
    try:
        while size > 0:
            chunk = await asyncio.to_thread(os.read, fd, min(_CHUNK, size))
            if not chunk:
                break
            size -= len(chunk)
            yield chunk
    finally:
        os.close(fd)


def _attachment(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


async def _container(s: Services, request: Request) -> Container:
    container_id = request.path_params["container_id"]
    project = s.project(request)
    found = await asyncio.to_thread(Container.find, s.settings.data_dir, project, container_id)
    if found is None:
        raise NotFound(
            f"container {container_id!r} not found", param="container_id", code="not_found"
        )
    return found


async def _file(s: Services, request: Request) -> tuple[Container, ContainerFile]:
    box = await _container(s, request)
    file_id = request.path_params["file_id"]
    found = await asyncio.to_thread(box.file, file_id)
    if found is None:
        raise NotFound(f"file {file_id!r} not found", param="file_id", code="not_found")
    return box, found


def routes(s: Services) -> list[Route]:
    @api(response=ContainerPage, query=(*PAGE, Query("name", {"type": "string"})))
    async def list_containers(request: Request) -> Response:
        """List the code interpreter's containers."""
        project = s.project(request)

        def load() -> list[dict[str, Any]]:
            boxes = [box.to_json() for box in Container.all(s.settings.data_dir, project)]
            return sorted(boxes, key=lambda b: (b["created_at"], b["id"]))

        data = await asyncio.to_thread(load)
        name = request.query_params.get("name")
        if name:
            data = [box for box in data if box["name"] == name]
        return JSONResponse(_page(request, data))

    @api(response=ContainerObject)
    async def retrieve_container(request: Request) -> Response:
        """A container."""
        box = await _container(s, request)
        return JSONResponse(await asyncio.to_thread(box.to_json))

    @api(response=Deleted)
    async def delete_container(request: Request) -> Response:
        """Delete a container and its files."""
        box = await _container(s, request)
        await asyncio.to_thread(box.delete)
        return JSONResponse({"id": box.id, "object": "container.deleted", "deleted": True})

    @api(response=ContainerFilePage, query=PAGE)
    async def list_files(request: Request) -> Response:
        """List the files in a container."""
        box = await _container(s, request)
        files = await asyncio.to_thread(box.files)
        return JSONResponse(_page(request, [f.to_json(box.id) for f in files]))

    @api(response=ContainerFileObject)
    async def retrieve_file(request: Request) -> Response:
        """A container file's metadata."""
        box, found = await _file(s, request)
        return JSONResponse(found.to_json(box.id))

    @api(response=BINARY)
    async def file_content(request: Request) -> Response:
        """A container file's bytes."""
        box, found = await _file(s, request)
        try:
            fd = await asyncio.to_thread(box.open_file, found)
        except OSError:
            raise NotFound(
                f"file {found.id!r} not found", param="file_id", code="not_found"
            ) from None
        size = os.fstat(fd).st_size
        return StreamingResponse(
            _chunks(fd, size),
            media_type="application/octet-stream",
            headers={"content-length": str(size), "content-disposition": _attachment(found.path)},
        )

    @api(response=Deleted)
    async def delete_file(request: Request) -> Response:
        """Delete a container file."""
        box, found = await _file(s, request)
        try:
            await asyncio.to_thread(box.delete_file, found)
        except OSError:
            raise NotFound(
                f"file {found.id!r} not found", param="file_id", code="not_found"
            ) from None
        return JSONResponse({"id": found.id, "object": "container.file.deleted", "deleted": True})

    one = "/containers/{container_id}"
    return [
        Route("/containers", list_containers, methods=["GET"]),
        Route(one, retrieve_container, methods=["GET"]),
        Route(one, delete_container, methods=["DELETE"]),
        Route(f"{one}/files", list_files, methods=["GET"]),
        Route(f"{one}/files/{{file_id}}", retrieve_file, methods=["GET"]),
        Route(f"{one}/files/{{file_id}}", delete_file, methods=["DELETE"]),
        Route(f"{one}/files/{{file_id}}/content", file_content, methods=["GET"]),
    ]
