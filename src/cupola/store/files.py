"""Uploaded files, vector stores, the files attached to them and their text chunks.

The store keeps what indexing produced; it never parses or ranks text itself
(``cupola.tools.file_search`` extracts and chunks a file, then hands the result here as an
:class:`IndexedFile`; searching loads a store's chunks with :meth:`FileStore.chunks_of`).
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from cupola.domain import Page
from cupola.domain.files import (
    Attributes,
    FileBatchRecord,
    FileCounts,
    FileError,
    FileRecord,
    IndexedFile,
    StoredChunk,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from cupola.exceptions import NotFound
from cupola.ids import now, sortable_id
from cupola.store.base import SqlBase, page_of, paginate
from cupola.store.tables import (
    file_chunks,
    files,
    vector_store_file_batches,
    vector_store_files,
    vector_stores,
)


def _file(row: sa.Row[Any]) -> FileRecord:
    return FileRecord(**row._mapping)


_FILE_COLUMNS = (files.c.id, files.c.filename, files.c.purpose, files.c.bytes, files.c.created_at)
"""A file's row without its content."""


def _file_row(conn: sa.Connection, project: str, file_id: str) -> sa.Row[Any]:
    query: sa.Select[Any] = sa.select(files).with_only_columns(*_FILE_COLUMNS)
    row = conn.execute(query.where(files.c.id == file_id, files.c.project == project)).first()
    if row is None:
        raise NotFound(f"file {file_id!r} not found", param="file_id", code="not_found")
    return row


def _store_row(conn: sa.Connection, project: str, vector_store_id: str) -> sa.Row[Any]:
    row = conn.execute(
        sa.select(vector_stores).where(
            vector_stores.c.id == vector_store_id, vector_stores.c.project == project
        )
    ).first()
    if row is None:
        raise NotFound(
            f"vector store {vector_store_id!r} not found",
            param="vector_store_id",
            code="not_found",
        )
    return row


def _counts(
    conn: sa.Connection, vector_store_id: str, file_ids: list[str] | None = None
) -> tuple[FileCounts, int]:
    """File counts by status and total usage bytes of a store (or of some of its files)."""
    query = (
        sa.select(
            vector_store_files.c.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(vector_store_files.c.usage_bytes), 0),
        )
        .where(vector_store_files.c.vector_store_id == vector_store_id)
        .group_by(vector_store_files.c.status)
    )
    if file_ids is not None:
        query = query.where(vector_store_files.c.file_id.in_(file_ids))
    by_status: dict[str, int] = {}
    usage = 0
    for status, count, used in conn.execute(query):
        by_status[status] = int(count)
        usage += int(used)
    counts = FileCounts(
        in_progress=by_status.get("in_progress", 0),
        completed=by_status.get("completed", 0),
        failed=by_status.get("failed", 0),
        cancelled=by_status.get("cancelled", 0),
        total=sum(by_status.values()),
    )
    return counts, usage


def _vector_store(conn: sa.Connection, row: sa.Row[Any]) -> VectorStoreRecord:
    counts, usage = _counts(conn, row.id)
    return VectorStoreRecord(
        id=row.id,
        name=row.name,
        metadata=row.metadata,
        created_at=row.created_at,
        last_active_at=row.last_active_at,
        file_counts=counts,
        usage_bytes=usage,
    )


def _vs_file(row: sa.Row[Any]) -> VectorStoreFileRecord:
    error = None
    if row.last_error:
        data = orjson.loads(row.last_error)
        error = FileError(code=data["code"], message=data["message"])
    return VectorStoreFileRecord(
        vector_store_id=row.vector_store_id,
        file_id=row.file_id,
        status=row.status,
        last_error=error,
        attributes=row.attributes,
        usage_bytes=row.usage_bytes,
        created_at=row.created_at,
    )


def _vs_file_row(conn: sa.Connection, vector_store_id: str, file_id: str) -> sa.Row[Any]:
    row = conn.execute(
        sa.select(vector_store_files).where(
            vector_store_files.c.vector_store_id == vector_store_id,
            vector_store_files.c.file_id == file_id,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"file {file_id!r} is not in vector store {vector_store_id!r}",
            param="file_id",
            code="not_found",
        )
    return row


def _detach(conn: sa.Connection, vector_store_id: str, file_id: str) -> None:
    conn.execute(
        file_chunks.delete().where(
            file_chunks.c.vector_store_id == vector_store_id, file_chunks.c.file_id == file_id
        )
    )
    conn.execute(
        vector_store_files.delete().where(
            vector_store_files.c.vector_store_id == vector_store_id,
            vector_store_files.c.file_id == file_id,
        )
    )


def _attach(
    conn: sa.Connection, project: str, vector_store_id: str, indexed: list[IndexedFile]
) -> list[VectorStoreFileRecord]:
    """Store indexed files in a vector store, replacing earlier copies of the same files."""
    created = now()
    out: list[VectorStoreFileRecord] = []
    for item in indexed:
        _file_row(conn, project, item.file_id)
        _detach(conn, vector_store_id, item.file_id)
        status = "failed" if item.error else "completed"
        error = (
            orjson.dumps({"code": item.error.code, "message": item.error.message}).decode()
            if item.error
            else None
        )
        usage = 0 if item.error else item.usage_bytes
        conn.execute(
            vector_store_files.insert().values(
                vector_store_id=vector_store_id,
                file_id=item.file_id,
                status=status,
                last_error=error,
                attributes=item.attributes,
                usage_bytes=usage,
                created_at=created,
            )
        )
        if item.chunks and not item.error:
            conn.execute(
                file_chunks.insert(),
                [
                    {
                        "vector_store_id": vector_store_id,
                        "file_id": item.file_id,
                        "position": i,
                        "text": text,
                    }
                    for i, text in enumerate(item.chunks)
                ],
            )
        out.append(
            VectorStoreFileRecord(
                vector_store_id=vector_store_id,
                file_id=item.file_id,
                status=status,
                last_error=item.error,
                attributes=item.attributes,
                usage_bytes=usage,
                created_at=created,
            )
        )
    conn.execute(
        vector_stores.update()
        .where(vector_stores.c.id == vector_store_id)
        .values(last_active_at=created)
    )
    return out


def _batch(conn: sa.Connection, row: sa.Row[Any]) -> FileBatchRecord:
    counts, _ = _counts(conn, row.vector_store_id, list(row.file_ids))
    return FileBatchRecord(
        id=row.id,
        vector_store_id=row.vector_store_id,
        created_at=row.created_at,
        file_counts=counts,
    )


def _batch_row(
    conn: sa.Connection, project: str, vector_store_id: str, batch_id: str
) -> sa.Row[Any]:
    _store_row(conn, project, vector_store_id)
    row = conn.execute(
        sa.select(vector_store_file_batches).where(
            vector_store_file_batches.c.id == batch_id,
            vector_store_file_batches.c.vector_store_id == vector_store_id,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"file batch {batch_id!r} not found in vector store {vector_store_id!r}",
            param="batch_id",
            code="not_found",
        )
    return row


class FileStore(SqlBase):
    # ---- files -------------------------------------------------------------------------

    async def create_file(
        self, project: str, filename: str, purpose: str, content: bytes
    ) -> FileRecord:
        record = FileRecord(
            id=sortable_id("file-"),
            filename=filename,
            purpose=purpose,
            bytes=len(content),
            created_at=now(),
        )

        def run(conn: sa.Connection) -> FileRecord:
            conn.execute(
                files.insert().values(
                    id=record.id,
                    project=project,
                    filename=filename,
                    purpose=purpose,
                    bytes=record.bytes,
                    content=content,
                    created_at=record.created_at,
                )
            )
            return record

        return await self._write(run)

    async def get_file(self, project: str, file_id: str) -> FileRecord:
        def run(conn: sa.Connection) -> FileRecord:
            return _file(_file_row(conn, project, file_id))

        return await self._read(run)

    async def get_file_content(self, project: str, file_id: str) -> tuple[FileRecord, bytes]:
        def run(conn: sa.Connection) -> tuple[FileRecord, bytes]:
            record = _file(_file_row(conn, project, file_id))
            content = conn.execute(sa.select(files.c.content).where(files.c.id == file_id)).scalar()
            return record, bytes(content or b"")

        return await self._read(run)

    async def read_file(self, project: str, file_id: str) -> tuple[str, bytes]:
        """A file's name and content; raises NotFound (the code interpreter's FileSource)."""
        record, content = await self.get_file_content(project, file_id)
        return record.filename, content

    async def list_files(
        self,
        project: str,
        *,
        purpose: str | None = None,
        limit: int = 10000,
        order: str = "desc",
        after: str | None = None,
    ) -> Page[FileRecord]:
        def run(conn: sa.Connection) -> Page[FileRecord]:
            query: sa.Select[Any] = sa.select(files).with_only_columns(*_FILE_COLUMNS)
            query = query.where(files.c.project == project)
            if purpose:
                query = query.where(files.c.purpose == purpose)
            rows, more = paginate(conn, query, files.c.id, limit=limit, order=order, after=after)
            return page_of([_file(r) for r in rows], more)

        return await self._read(run)

    async def delete_file(self, project: str, file_id: str) -> None:
        """Delete a file and remove it from every vector store."""

        def run(conn: sa.Connection) -> None:
            _file_row(conn, project, file_id)
            conn.execute(file_chunks.delete().where(file_chunks.c.file_id == file_id))
            conn.execute(vector_store_files.delete().where(vector_store_files.c.file_id == file_id))
            conn.execute(files.delete().where(files.c.id == file_id))

        await self._write(run)

    # ---- vector stores -----------------------------------------------------------------

    async def create_vector_store(
        self,
        project: str,
        name: str | None,
        metadata: dict[str, str],
        indexed: list[IndexedFile] | None = None,
    ) -> VectorStoreRecord:
        """A new vector store, with ``indexed`` files attached in the same transaction."""
        store_id = sortable_id("vs_")
        created = now()

        def run(conn: sa.Connection) -> VectorStoreRecord:
            conn.execute(
                vector_stores.insert().values(
                    id=store_id,
                    project=project,
                    name=name,
                    metadata=metadata,
                    created_at=created,
                    last_active_at=created,
                )
            )
            _attach(conn, project, store_id, indexed or [])
            return _vector_store(conn, _store_row(conn, project, store_id))

        return await self._write(run)

    async def get_vector_store(self, project: str, vector_store_id: str) -> VectorStoreRecord:
        def run(conn: sa.Connection) -> VectorStoreRecord:
            return _vector_store(conn, _store_row(conn, project, vector_store_id))

        return await self._read(run)

    async def check_vector_stores(self, project: str, vector_store_ids: list[str]) -> None:
        """Raise NotFound for the first id that names no vector store of ``project``."""

        def run(conn: sa.Connection) -> None:
            for vector_store_id in vector_store_ids:
                _store_row(conn, project, vector_store_id)

        await self._read(run)

    async def list_vector_stores(
        self,
        project: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page[VectorStoreRecord]:
        def run(conn: sa.Connection) -> Page[VectorStoreRecord]:
            query = sa.select(vector_stores).where(vector_stores.c.project == project)
            rows, more = paginate(
                conn,
                query,
                vector_stores.c.id,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
            return page_of([_vector_store(conn, r) for r in rows], more)

        return await self._read(run)

    async def update_vector_store(
        self,
        project: str,
        vector_store_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> VectorStoreRecord:
        """Change the name and/or metadata (None leaves a field as it is)."""

        def run(conn: sa.Connection) -> VectorStoreRecord:
            _store_row(conn, project, vector_store_id)
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if metadata is not None:
                values["metadata"] = metadata
            if values:
                conn.execute(
                    vector_stores.update()
                    .where(vector_stores.c.id == vector_store_id)
                    .values(**values)
                )
            return _vector_store(conn, _store_row(conn, project, vector_store_id))

        return await self._write(run)

    async def delete_vector_store(self, project: str, vector_store_id: str) -> None:
        """Delete a vector store with its chunks and batches (the files themselves stay)."""

        def run(conn: sa.Connection) -> None:
            _store_row(conn, project, vector_store_id)
            for table in (file_chunks, vector_store_files, vector_store_file_batches):
                conn.execute(table.delete().where(table.c.vector_store_id == vector_store_id))
            conn.execute(vector_stores.delete().where(vector_stores.c.id == vector_store_id))

        await self._write(run)

    # ---- files in vector stores --------------------------------------------------------

    async def attach_files(
        self, project: str, vector_store_id: str, indexed: list[IndexedFile]
    ) -> list[VectorStoreFileRecord]:
        """Store indexed files in a vector store; a file already there is replaced."""

        def run(conn: sa.Connection) -> list[VectorStoreFileRecord]:
            _store_row(conn, project, vector_store_id)
            return _attach(conn, project, vector_store_id, indexed)

        return await self._write(run)

    async def create_file_batch(
        self, project: str, vector_store_id: str, indexed: list[IndexedFile]
    ) -> FileBatchRecord:
        """Attach files as one batch (one transaction) and remember which files it held."""
        batch_id = sortable_id("vsfb_")

        def run(conn: sa.Connection) -> FileBatchRecord:
            _store_row(conn, project, vector_store_id)
            _attach(conn, project, vector_store_id, indexed)
            conn.execute(
                vector_store_file_batches.insert().values(
                    id=batch_id,
                    vector_store_id=vector_store_id,
                    file_ids=list(dict.fromkeys(f.file_id for f in indexed)),
                    created_at=now(),
                )
            )
            return _batch(conn, _batch_row(conn, project, vector_store_id, batch_id))

        return await self._write(run)

    async def get_file_batch(
        self, project: str, vector_store_id: str, batch_id: str
    ) -> FileBatchRecord:
        def run(conn: sa.Connection) -> FileBatchRecord:
            return _batch(conn, _batch_row(conn, project, vector_store_id, batch_id))

        return await self._read(run)

    async def list_vector_store_files(
        self,
        project: str,
        vector_store_id: str,
        *,
        batch_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page[VectorStoreFileRecord]:
        """A store's files (or one batch's), paged by file id, optionally of one status."""

        def run(conn: sa.Connection) -> Page[VectorStoreFileRecord]:
            _store_row(conn, project, vector_store_id)
            query = sa.select(vector_store_files).where(
                vector_store_files.c.vector_store_id == vector_store_id
            )
            if batch_id is not None:
                batch = _batch_row(conn, project, vector_store_id, batch_id)
                query = query.where(vector_store_files.c.file_id.in_(list(batch.file_ids)))
            if status:
                query = query.where(vector_store_files.c.status == status)
            rows, more = paginate(
                conn,
                query,
                vector_store_files.c.file_id,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
            return page_of([_vs_file(r) for r in rows], more)

        return await self._read(run)

    async def get_vector_store_file(
        self, project: str, vector_store_id: str, file_id: str
    ) -> VectorStoreFileRecord:
        def run(conn: sa.Connection) -> VectorStoreFileRecord:
            _store_row(conn, project, vector_store_id)
            return _vs_file(_vs_file_row(conn, vector_store_id, file_id))

        return await self._read(run)

    async def update_vector_store_file(
        self, project: str, vector_store_id: str, file_id: str, attributes: Attributes
    ) -> VectorStoreFileRecord:
        def run(conn: sa.Connection) -> VectorStoreFileRecord:
            _store_row(conn, project, vector_store_id)
            _vs_file_row(conn, vector_store_id, file_id)
            conn.execute(
                vector_store_files.update()
                .where(
                    vector_store_files.c.vector_store_id == vector_store_id,
                    vector_store_files.c.file_id == file_id,
                )
                .values(attributes=attributes)
            )
            return _vs_file(_vs_file_row(conn, vector_store_id, file_id))

        return await self._write(run)

    async def detach_file(self, project: str, vector_store_id: str, file_id: str) -> None:
        """Remove a file from a vector store (the file itself stays)."""

        def run(conn: sa.Connection) -> None:
            _store_row(conn, project, vector_store_id)
            _vs_file_row(conn, vector_store_id, file_id)
            _detach(conn, vector_store_id, file_id)

        await self._write(run)

    async def chunks_of(
        self, project: str, vector_store_ids: list[str], file_id: str | None = None
    ) -> list[StoredChunk]:
        """Every chunk of the completed files of some vector stores (or of one file in them),
        in storage order; raises NotFound for an unknown store."""

        def run(conn: sa.Connection) -> list[StoredChunk]:
            for vector_store_id in vector_store_ids:
                _store_row(conn, project, vector_store_id)
            query = (
                sa.select(
                    file_chunks.c.vector_store_id,
                    file_chunks.c.file_id,
                    files.c.filename,
                    vector_store_files.c.attributes,
                    file_chunks.c.position,
                    file_chunks.c.text,
                )
                .join(
                    vector_store_files,
                    sa.and_(
                        vector_store_files.c.vector_store_id == file_chunks.c.vector_store_id,
                        vector_store_files.c.file_id == file_chunks.c.file_id,
                    ),
                )
                .join(files, files.c.id == file_chunks.c.file_id)
                .where(
                    file_chunks.c.vector_store_id.in_(vector_store_ids),
                    vector_store_files.c.status == "completed",
                )
                .order_by(file_chunks.c.seq)
            )
            if file_id is not None:
                query = query.where(file_chunks.c.file_id == file_id)
            return [
                StoredChunk(
                    vector_store_id=r.vector_store_id,
                    file_id=r.file_id,
                    filename=r.filename,
                    attributes=r.attributes,
                    position=r.position,
                    text=r.text,
                )
                for r in conn.execute(query)
            ]

        return await self._read(run)
