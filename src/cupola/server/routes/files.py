"""``/files`` and ``/vector_stores`` (with their files, file batches and search), as the
openai SDK calls them."""

from __future__ import annotations

import mimetypes
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.domain.files import (
    FileBatchRecord,
    FileCounts,
    FileRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from cupola.exceptions import UserError
from cupola.runtime.request import Metadata
from cupola.runtime.services.files import batch_entries
from cupola.server.http import JSONResponse, list_envelope, parse_body, query_int, query_order
from cupola.server.multipart import basename as _basename
from cupola.server.multipart import parse_multipart, read_upload
from cupola.server.openapi import BINARY, PAGE, PAGE_BOTH_WAYS, Query, api
from cupola.server.schemas.common import Deleted
from cupola.server.schemas.objects import (
    FileBatch,
    FileContentPage,
    FileObject,
    FilePage,
    FileUpload,
    SearchResults,
    VectorStore,
    VectorStoreFile,
    VectorStoreFilePage,
    VectorStorePage,
)
from cupola.server.services import Services

_FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
PURPOSE = Query("purpose", {"type": "string"}, "Only files of this purpose.")
STATUS_FILTER = Query(
    "filter", {"type": "string", "enum": list(_FILE_STATUSES)}, "Only files in this status."
)

# ---- wire shapes ---------------------------------------------------------------------------


def file_object(f: FileRecord) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def _counts(c: FileCounts) -> dict[str, int]:
    return {
        "in_progress": c.in_progress,
        "completed": c.completed,
        "failed": c.failed,
        "cancelled": c.cancelled,
        "total": c.total,
    }


def vector_store_object(v: VectorStoreRecord) -> dict[str, Any]:
    return {
        "id": v.id,
        "object": "vector_store",
        "created_at": v.created_at,
        "name": v.name or "",
        "metadata": v.metadata,
        "status": "in_progress" if v.file_counts.in_progress else "completed",
        "usage_bytes": v.usage_bytes,
        "file_counts": _counts(v.file_counts),
        "last_active_at": v.last_active_at,
        "expires_after": None,
        "expires_at": None,
    }


def vector_store_file_object(f: VectorStoreFileRecord) -> dict[str, Any]:
    error = f.last_error
    return {
        "id": f.file_id,
        "object": "vector_store.file",
        "created_at": f.created_at,
        "vector_store_id": f.vector_store_id,
        "status": f.status,
        "last_error": {"code": error.code, "message": error.message} if error else None,
        "usage_bytes": f.usage_bytes,
        "attributes": f.attributes,
    }


def batch_object(b: FileBatchRecord) -> dict[str, Any]:
    return {
        "id": b.id,
        "object": "vector_store.files_batch",
        "created_at": b.created_at,
        "vector_store_id": b.vector_store_id,
        "status": "in_progress" if b.file_counts.in_progress else "completed",
        "file_counts": _counts(b.file_counts),
    }


# ---- bodies --------------------------------------------------------------------------------


class CreateVectorStore(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    file_ids: list[str] | None = None
    metadata: Metadata = None
    chunking_strategy: Any = None


class UpdateVectorStore(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    metadata: Metadata = None


class CreateVectorStoreFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    file_id: str
    attributes: Any = None
    chunking_strategy: Any = None


class UpdateVectorStoreFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    attributes: Any = None


class CreateFileBatch(BaseModel):
    model_config = ConfigDict(extra="allow")
    file_ids: list[str] | None = None
    files: list[dict[str, Any]] | None = None
    attributes: Any = None
    chunking_strategy: Any = None


class SearchVectorStore(BaseModel):
    model_config = ConfigDict(extra="allow")
    query: str | list[str]
    filters: Any = None
    max_num_results: Any = None
    ranking_options: Any = None
    rewrite_query: StrictBool | None = None


def routes(s: Services) -> list[Route]:
    return [*_file_routes(s), *_vector_store_routes(s), *_store_file_routes(s)]


def _file_routes(s: Services) -> list[Route]:
    store = s.store

    @api(form=FileUpload, response=FileObject)
    async def upload_file(request: Request) -> Response:
        """Upload a file (multipart/form-data: file, purpose)."""
        project = s.project(request)
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise UserError("upload files as multipart/form-data", code="invalid_multipart")
        parts = parse_multipart(await read_upload(request, s.files.max_file_bytes), content_type)
        upload = next((p for p in parts if p.name == "file"), None)
        if upload is None:
            raise UserError("the form has no 'file' part", param="file")
        purpose_part = next((p for p in parts if p.name == "purpose"), None)
        purpose = purpose_part.content.decode("utf-8", "replace").strip() if purpose_part else ""
        record = await s.files.upload(project, _basename(upload.filename), purpose, upload.content)
        return JSONResponse(file_object(record))

    @api(response=FilePage, query=(*PAGE, PURPOSE))
    async def list_files(request: Request) -> Response:
        """List files, newest first (filter by purpose)."""
        page = await store.list_files(
            s.project(request),
            purpose=request.query_params.get("purpose") or None,
            limit=query_int(request, "limit", 10000, high=10000),
            order=query_order(request),
            after=request.query_params.get("after") or None,
        )
        return JSONResponse(list_envelope([file_object(f) for f in page.data], page.has_more))

    @api(response=FileObject)
    async def retrieve_file(request: Request) -> Response:
        """A file's metadata."""
        record = await store.get_file(s.project(request), request.path_params["file_id"])
        return JSONResponse(file_object(record))

    @api(response=Deleted)
    async def delete_file(request: Request) -> Response:
        """Delete a file and remove it from every vector store."""
        file_id = request.path_params["file_id"]
        await store.delete_file(s.project(request), file_id)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    @api(response=BINARY)
    async def file_content(request: Request) -> Response:
        """A file's bytes."""
        record, content = await store.get_file_content(
            s.project(request), request.path_params["file_id"]
        )
        media = mimetypes.guess_type(record.filename)[0] or "application/octet-stream"
        return Response(content, media_type=media)

    return [
        Route("/files", upload_file, methods=["POST"]),
        Route("/files", list_files, methods=["GET"]),
        Route("/files/{file_id}", retrieve_file, methods=["GET"]),
        Route("/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/files/{file_id}/content", file_content, methods=["GET"]),
    ]


def _vector_store_routes(s: Services) -> list[Route]:
    store = s.store

    @api(body=CreateVectorStore, response=VectorStore)
    async def create_store(request: Request) -> Response:
        """Create a vector store, optionally with files (indexed before this returns)."""
        body = await parse_body(request, CreateVectorStore)
        project = s.project(request)
        record = await s.files.create_vector_store(
            project,
            name=body.name,
            metadata=body.metadata,
            file_ids=body.file_ids,
            chunking_strategy=body.chunking_strategy,
        )
        return JSONResponse(vector_store_object(record))

    @api(response=VectorStorePage, query=PAGE_BOTH_WAYS)
    async def list_stores(request: Request) -> Response:
        """List vector stores, newest first."""
        page = await store.list_vector_stores(
            s.project(request),
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=request.query_params.get("after") or None,
            before=request.query_params.get("before") or None,
        )
        data = [vector_store_object(v) for v in page.data]
        return JSONResponse(list_envelope(data, page.has_more))

    @api(response=VectorStore)
    async def retrieve_store(request: Request) -> Response:
        """A vector store, with its file counts."""
        record = await store.get_vector_store(
            s.project(request), request.path_params["vector_store_id"]
        )
        return JSONResponse(vector_store_object(record))

    @api(body=UpdateVectorStore, response=VectorStore)
    async def update_store(request: Request) -> Response:
        """Rename a vector store or replace its metadata."""
        body = await parse_body(request, UpdateVectorStore)
        record = await store.update_vector_store(
            s.project(request),
            request.path_params["vector_store_id"],
            name=body.name,
            metadata=body.metadata,
        )
        return JSONResponse(vector_store_object(record))

    @api(response=Deleted)
    async def delete_store(request: Request) -> Response:
        """Delete a vector store (its files stay)."""
        vector_store_id = request.path_params["vector_store_id"]
        await store.delete_vector_store(s.project(request), vector_store_id)
        return JSONResponse(
            {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}
        )

    @api(body=SearchVectorStore, response=SearchResults)
    async def search_store(request: Request) -> Response:
        """Search a vector store's chunks (BM25, scores 0..1)."""
        body = await parse_body(request, SearchVectorStore)
        found = await s.files.search(
            s.project(request),
            request.path_params["vector_store_id"],
            body.query,
            filters=body.filters,
            max_num_results=body.max_num_results,
            ranking_options=body.ranking_options,
        )
        data = [
            {
                "file_id": h.file_id,
                "filename": h.filename,
                "score": h.score,
                "attributes": h.attributes,
                "content": [{"type": "text", "text": h.text}],
            }
            for h in found.hits
        ]
        return JSONResponse(
            {
                "object": "vector_store.search_results.page",
                "search_query": found.queries,
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )

    base = "/vector_stores/{vector_store_id}"
    return [
        Route("/vector_stores", create_store, methods=["POST"]),
        Route("/vector_stores", list_stores, methods=["GET"]),
        Route(base, retrieve_store, methods=["GET"]),
        Route(base, update_store, methods=["POST"]),
        Route(base, delete_store, methods=["DELETE"]),
        Route(base + "/search", search_store, methods=["POST"]),
    ]


def _store_file_routes(s: Services) -> list[Route]:
    """Files of a vector store, and file batches."""
    store = s.store

    @api(body=CreateVectorStoreFile, response=VectorStoreFile)
    async def attach_file(request: Request) -> Response:
        """Add a file to a vector store; it is chunked before this returns."""
        body = await parse_body(request, CreateVectorStoreFile)
        project, vector_store_id = s.project(request), request.path_params["vector_store_id"]
        record = await s.files.attach_file(
            project,
            vector_store_id,
            body.file_id,
            attributes=body.attributes,
            chunking_strategy=body.chunking_strategy,
        )
        return JSONResponse(vector_store_file_object(record))

    def _status_filter(request: Request) -> str | None:
        status = request.query_params.get("filter") or None
        if status is not None and status not in _FILE_STATUSES:
            raise UserError(f"filter must be one of {', '.join(_FILE_STATUSES)}", param="filter")
        return status

    @api(response=VectorStoreFilePage, query=(*PAGE_BOTH_WAYS, STATUS_FILTER))
    async def list_store_files(request: Request) -> Response:
        """List a vector store's files (or one batch's), filtered by status."""
        page = await store.list_vector_store_files(
            s.project(request),
            request.path_params["vector_store_id"],
            batch_id=request.path_params.get("batch_id"),
            status=_status_filter(request),
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=request.query_params.get("after") or None,
            before=request.query_params.get("before") or None,
        )
        data = [vector_store_file_object(f) for f in page.data]
        return JSONResponse(list_envelope(data, page.has_more))

    @api(response=VectorStoreFile)
    async def retrieve_store_file(request: Request) -> Response:
        """A vector store file: its status and last error."""
        record = await store.get_vector_store_file(
            s.project(request),
            request.path_params["vector_store_id"],
            request.path_params["file_id"],
        )
        return JSONResponse(vector_store_file_object(record))

    @api(body=UpdateVectorStoreFile, response=VectorStoreFile)
    async def update_store_file(request: Request) -> Response:
        """Replace a vector store file's attributes."""
        body = await parse_body(request, UpdateVectorStoreFile)
        record = await s.files.update_attributes(
            s.project(request),
            request.path_params["vector_store_id"],
            request.path_params["file_id"],
            body.attributes,
        )
        return JSONResponse(vector_store_file_object(record))

    @api(response=Deleted)
    async def detach_file(request: Request) -> Response:
        """Remove a file from a vector store (the file stays)."""
        file_id = request.path_params["file_id"]
        await store.detach_file(s.project(request), request.path_params["vector_store_id"], file_id)
        return JSONResponse({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    @api(response=FileContentPage)
    async def store_file_content(request: Request) -> Response:
        """The text a vector store indexed from one of its files."""
        text = await s.files.indexed_text(
            s.project(request),
            request.path_params["vector_store_id"],
            request.path_params["file_id"],
        )
        data = [{"type": "text", "text": text}] if text is not None else []
        return JSONResponse(
            {
                "object": "vector_store.file_content.page",
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )

    @api(body=CreateFileBatch, response=FileBatch)
    async def create_batch(request: Request) -> Response:
        """Add several files to a vector store at once; all are chunked before this returns."""
        body = await parse_body(request, CreateFileBatch)
        project, vector_store_id = s.project(request), request.path_params["vector_store_id"]
        entries = batch_entries(body.file_ids, body.files, body.attributes, body.chunking_strategy)
        batch = await s.files.create_batch(project, vector_store_id, entries)
        return JSONResponse(batch_object(batch))

    @api(response=FileBatch)
    async def retrieve_batch(request: Request) -> Response:
        """A file batch, with the counts of its files by status."""
        batch = await store.get_file_batch(
            s.project(request),
            request.path_params["vector_store_id"],
            request.path_params["batch_id"],
        )
        return JSONResponse(batch_object(batch))

    base = "/vector_stores/{vector_store_id}"
    batch = base + "/file_batches/{batch_id}"
    return [
        Route(base + "/files", attach_file, methods=["POST"]),
        Route(base + "/files", list_store_files, methods=["GET"]),
        Route(base + "/files/{file_id}", retrieve_store_file, methods=["GET"]),
        Route(base + "/files/{file_id}", update_store_file, methods=["POST"]),
        Route(base + "/files/{file_id}", detach_file, methods=["DELETE"]),
        Route(base + "/files/{file_id}/content", store_file_content, methods=["GET"]),
        Route(base + "/file_batches", create_batch, methods=["POST"]),
        Route(batch, retrieve_batch, methods=["GET"]),
        # indexing is synchronous: a batch is finished when it is created; cancel is a no-op
        Route(batch + "/cancel", retrieve_batch, methods=["POST"]),
        Route(batch + "/files", list_store_files, methods=["GET"]),
    ]
