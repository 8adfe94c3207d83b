"""Files and vector stores: uploading, indexing (chunking files into a vector store) and
searching, with every check, whoever asks (the routes, and the console when it comes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from cupola.domain.files import (
    FileBatchRecord,
    FileRecord,
    IndexedFile,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from cupola.exceptions import PayloadTooLarge, UserError
from cupola.store.files import FileStore
from cupola.tools.file_search import (
    DEFAULT_MAX_RESULTS,
    MAX_QUERIES,
    SearchHit,
    check_attributes,
    check_chunking_strategy,
    check_filters,
    check_max_results,
    check_ranking_options,
    index_file,
    score_threshold,
    search_files,
)
from cupola.tools.ranking import UnsupportedFile, extract_text

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_BATCH_FILES = 2000


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file to index as a request names it, with its own attributes and chunking;
    ``where`` prefixes the ``param`` of an error about it (``files[2].``)."""

    file_id: str
    attributes: Any = None
    chunking_strategy: Any = None
    where: str = ""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A search: the queries as run (blank ones dropped) and the ranked chunks."""

    queries: list[str]
    hits: list[SearchHit]


def search_queries(query: Any) -> list[str]:
    """The non-blank queries of a search's ``query`` (a string or a list of strings)."""
    queries = [query] if isinstance(query, str) else query
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise UserError("query must be a non-empty string or list of strings", param="query")
    queries = [q for q in queries if q.strip()]
    if not queries:
        raise UserError("query must be a non-empty string or list of strings", param="query")
    if len(queries) > MAX_QUERIES:
        raise UserError(f"query holds at most {MAX_QUERIES} strings", param="query")
    return queries


def batch_entries(
    file_ids: list[str] | None,
    files: list[dict[str, Any]] | None,
    attributes: Any = None,
    chunking_strategy: Any = None,
) -> list[FileEntry]:
    """The files of a batch: ``file_ids`` with the batch's attributes and chunking, or
    ``files`` each with its own (exactly one of the two; 1 to 2000 files)."""
    if (file_ids is None) == (files is None):
        raise UserError("give exactly one of file_ids and files", param="file_ids")
    if file_ids is not None:
        entries = [FileEntry(f, attributes, chunking_strategy) for f in file_ids]
    else:
        entries = []
        for i, entry in enumerate(files or []):
            if not isinstance(entry, dict) or not isinstance(entry.get("file_id"), str):
                raise UserError(f"files[{i}].file_id must be a string", param=f"files[{i}]")
            entries.append(
                FileEntry(
                    entry["file_id"],
                    entry.get("attributes"),
                    entry.get("chunking_strategy"),
                    f"files[{i}].",
                )
            )
    if not entries or len(entries) > MAX_BATCH_FILES:
        raise UserError(f"a batch holds 1 to {MAX_BATCH_FILES} files", param="file_ids")
    return entries


class FileService:
    """Uploads files, indexes them into vector stores (synchronously: a file is chunked
    before the call returns) and searches them. ``max_file_bytes`` caps an upload."""

    def __init__(self, store: FileStore, max_file_bytes: int) -> None:
        self.store = store
        self.max_file_bytes = max_file_bytes

    async def upload(self, project: str, filename: str, purpose: str, content: bytes) -> FileRecord:
        """Store an uploaded file (413 over the size cap, 400 for an unknown purpose)."""
        if len(content) > self.max_file_bytes:
            raise PayloadTooLarge(
                f"the file exceeds {self.max_file_bytes} bytes", code="file_too_large"
            )
        if purpose not in PURPOSES:
            raise UserError(f"purpose must be one of {', '.join(PURPOSES)}", param="purpose")
        return await self.store.create_file(project, filename, purpose, content)

    async def _index(self, project: str, entries: list[FileEntry]) -> list[IndexedFile]:
        """Check every entry first (nothing is read when one is bad), then read and chunk
        the files one by one (404 for a file that does not exist)."""
        checked = [
            (
                e.file_id,
                check_attributes(e.attributes, f"{e.where}attributes"),
                check_chunking_strategy(e.chunking_strategy, f"{e.where}chunking_strategy"),
            )
            for e in entries
        ]
        return [await index_file(self.store, project, fid, a, c) for fid, a, c in checked]

    async def create_vector_store(
        self,
        project: str,
        *,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        file_ids: list[str] | None = None,
        chunking_strategy: Any = None,
    ) -> VectorStoreRecord:
        """A new vector store holding ``file_ids``, indexed before this returns."""
        check_chunking_strategy(chunking_strategy)
        entries = [FileEntry(f, None, chunking_strategy) for f in file_ids or []]
        indexed = await self._index(project, entries)
        return await self.store.create_vector_store(project, name, metadata or {}, indexed)

    async def attach_file(
        self,
        project: str,
        vector_store_id: str,
        file_id: str,
        *,
        attributes: Any = None,
        chunking_strategy: Any = None,
    ) -> VectorStoreFileRecord:
        """Index a file into a vector store (404 when either does not exist)."""
        await self.store.check_vector_stores(project, [vector_store_id])
        indexed = await self._index(project, [FileEntry(file_id, attributes, chunking_strategy)])
        [record] = await self.store.attach_files(project, vector_store_id, indexed)
        return record

    async def create_batch(
        self, project: str, vector_store_id: str, entries: list[FileEntry]
    ) -> FileBatchRecord:
        """Index several files (:func:`batch_entries`) into a vector store at once."""
        await self.store.check_vector_stores(project, [vector_store_id])
        indexed = await self._index(project, entries)
        return await self.store.create_file_batch(project, vector_store_id, indexed)

    async def update_attributes(
        self, project: str, vector_store_id: str, file_id: str, attributes: Any
    ) -> VectorStoreFileRecord:
        """Replace the attributes of a vector store's file."""
        return await self.store.update_vector_store_file(
            project, vector_store_id, file_id, check_attributes(attributes)
        )

    async def search(
        self,
        project: str,
        vector_store_id: str,
        query: Any,
        *,
        filters: Any = None,
        max_num_results: Any = None,
        ranking_options: Any = None,
    ) -> SearchResult:
        """Rank a vector store's chunks against ``query`` (BM25, scores 0..1), filtered by
        attribute ``filters``, at most ``max_num_results`` (default 10) at or above
        ``ranking_options.score_threshold``."""
        queries = search_queries(query)
        ranking = check_ranking_options(ranking_options)
        hits = await search_files(
            self.store,
            project,
            [vector_store_id],
            queries,
            max_num_results=check_max_results(max_num_results) or DEFAULT_MAX_RESULTS,
            filters=check_filters(filters),
            score_threshold=score_threshold(ranking),
        )
        return SearchResult(queries, hits)

    async def indexed_text(self, project: str, vector_store_id: str, file_id: str) -> str | None:
        """The text a vector store indexed from one of its files (None while it is not
        indexed, or when it holds no text)."""
        entry = await self.store.get_vector_store_file(project, vector_store_id, file_id)
        if entry.status != "completed":
            return None
        record, content = await self.store.get_file_content(project, entry.file_id)
        try:
            text: str = await anyio.to_thread.run_sync(extract_text, record.filename, content)
        except UnsupportedFile:
            return None
        return text
