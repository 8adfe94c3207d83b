"""Files, vector stores and their chunks, as the file store returns them."""

from __future__ import annotations

from dataclasses import dataclass, field

Attributes = dict[str, str | float | bool]
"""A vector store file's attributes: up to 16 keys, values strings, numbers or booleans."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class VectorStoreRecord:
    id: str
    name: str | None
    metadata: dict[str, str]
    created_at: int
    last_active_at: int | None
    file_counts: FileCounts
    usage_bytes: int


@dataclass(frozen=True, slots=True)
class FileError:
    code: str
    """``server_error``, ``unsupported_file`` or ``invalid_file``."""
    message: str


@dataclass(frozen=True, slots=True)
class VectorStoreFileRecord:
    vector_store_id: str
    file_id: str
    status: str
    """``completed`` or ``failed`` (indexing is synchronous)."""
    last_error: FileError | None
    attributes: Attributes
    usage_bytes: int
    created_at: int


@dataclass(frozen=True, slots=True)
class FileBatchRecord:
    id: str
    vector_store_id: str
    created_at: int
    file_counts: FileCounts


@dataclass(slots=True)
class IndexedFile:
    """A file prepared for a vector store: its chunks, or why it has none."""

    file_id: str
    attributes: Attributes = field(default_factory=dict)
    chunks: list[str] = field(default_factory=list)
    usage_bytes: int = 0
    error: FileError | None = None


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """One chunk of a completed vector store file, with what a search result shows."""

    vector_store_id: str
    file_id: str
    filename: str
    attributes: Attributes
    position: int
    text: str
