"""File search: index uploaded files into vector stores, search them, and the
``file_search`` tool that lets a model do so.

Indexing is synchronous and local: a file is extracted to text and chunked
(:mod:`cupola.tools.ranking`) before it is attached, so a vector store file is ``completed``
or ``failed`` as soon as the call that attached it returns. Searching ranks a store's chunks
with BM25; nothing leaves the machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

import anyio.to_thread
import orjson

from cupola.domain.files import Attributes, FileError, IndexedFile, StoredChunk
from cupola.domain.records import Item
from cupola.exceptions import CupolaError, UserError
from cupola.ids import new_id
from cupola.models.base import FunctionSpec, ToolCall
from cupola.store.files import FileStore
from cupola.tools.base import Rendered, ToolContext, Toolset
from cupola.tools.ranking import ChunkingStrategy, UnsupportedFile, chunk_text, extract_text, rank

DEFAULT_MAX_RESULTS = 10
"""Results a search returns when the request names no ``max_num_results``."""
MAX_RESULTS = 50
MAX_QUERIES = 10
"""Queries one tool call may run; more are ignored."""
_COMPARISONS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
_MAX_FILTER_DEPTH = 8

# ---- validation ----------------------------------------------------------------------------


def check_attributes(raw: Any, where: str = "attributes") -> Attributes:
    """OpenAI's attribute limits: 16 keys of at most 64 characters; values are strings (at
    most 512 characters), numbers or booleans."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be an object", param=where)
    if len(raw) > 16:
        raise UserError(f"{where} holds at most 16 keys", param=where)
    out: Attributes = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise UserError(f"{where} keys must be 1-64 characters", param=where)
        if isinstance(value, str):
            if len(value) > 512:
                raise UserError(f"{where}.{key} is longer than 512 characters", param=where)
        elif not isinstance(value, bool | int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise UserError(f"{where}.{key} must be a string, number or boolean", param=where)
        out[key] = value
    return out


def check_chunking_strategy(raw: Any, where: str = "chunking_strategy") -> ChunkingStrategy:
    """``{"type": "auto"}`` (800 tokens, 400 overlap) or ``{"type": "static", "static":
    {"max_chunk_size_tokens", "chunk_overlap_tokens"}}``."""
    if raw is None:
        return ChunkingStrategy()
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "auto":
        return ChunkingStrategy()
    static = raw.get("static") if isinstance(raw, dict) else None
    if kind != "static" or not isinstance(static, dict):
        raise UserError(
            f"{where} must be {{'type': 'auto'}} or {{'type': 'static', 'static': {{...}}}}",
            param=where,
        )
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if not _is_int(size) or not _is_int(overlap):
        raise UserError(
            f"{where}.static needs integer max_chunk_size_tokens and chunk_overlap_tokens",
            param=where,
        )
    try:
        return ChunkingStrategy(size, overlap)
    except ValueError as exc:
        raise UserError(f"{where}.static: {exc}", param=where) from None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_filters(raw: Any, where: str = "filters", depth: int = 0) -> dict[str, Any] | None:
    """A comparison filter ``{"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte"|"in"|"nin", "key",
    "value"}`` or a compound one ``{"type": "and"|"or", "filters": [...]}``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be an object", param=where)
    if depth > _MAX_FILTER_DEPTH:
        raise UserError(f"{where}: filters nest at most {_MAX_FILTER_DEPTH} deep", param=where)
    kind = raw.get("type")
    if kind in ("and", "or"):
        parts = raw.get("filters")
        if not isinstance(parts, list) or not parts:
            raise UserError(f"{where}.filters must be a non-empty list", param=where)
        checked = [
            check_filters(p, f"{where}.filters[{i}]", depth + 1) for i, p in enumerate(parts)
        ]
        return {"type": kind, "filters": checked}
    if kind not in _COMPARISONS:
        raise UserError(
            f"{where}.type must be one of and, or, {', '.join(sorted(_COMPARISONS))}",
            param=f"{where}.type",
        )
    key, value = raw.get("key"), raw.get("value")
    if not isinstance(key, str) or not key:
        raise UserError(f"{where}.key must be a non-empty string", param=where)
    scalar = isinstance(value, str | bool) or _is_number(value)
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(
            isinstance(v, str | bool) or _is_number(v) for v in value
        ):
            raise UserError(f"{where}.value must be a list of strings or numbers", param=where)
    elif not scalar:
        raise UserError(f"{where}.value must be a string, number or boolean", param=where)
    return {"type": kind, "key": key, "value": value}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _order(kind: str, a: Any, b: Any) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if kind == "gt":
        return bool(a > b)
    if kind == "gte":
        return bool(a >= b)
    if kind == "lt":
        return bool(a < b)
    return bool(a <= b)


def matches(attributes: Attributes, flt: dict[str, Any] | None) -> bool:
    """Whether a file's attributes pass a (checked) filter. A missing key fails every
    comparison except ``ne`` and ``nin``."""
    if flt is None:
        return True
    kind = flt["type"]
    if kind == "and":
        return all(matches(attributes, f) for f in flt["filters"])
    if kind == "or":
        return any(matches(attributes, f) for f in flt["filters"])
    present = flt["key"] in attributes
    actual, value = attributes.get(flt["key"]), flt["value"]
    if kind == "eq":
        return present and _same(actual, value)
    if kind == "ne":
        return not (present and _same(actual, value))
    if kind == "in":
        return present and any(_same(actual, v) for v in value)
    if kind == "nin":
        return not (present and any(_same(actual, v) for v in value))
    return present and _order(kind, actual, value)


def check_max_results(raw: Any, where: str = "max_num_results") -> int | None:
    if raw is None:
        return None
    if not _is_int(raw) or not 1 <= raw <= MAX_RESULTS:
        raise UserError(f"{where} must be an integer between 1 and {MAX_RESULTS}", param=where)
    return int(raw)


def check_ranking_options(raw: Any, where: str = "ranking_options") -> dict[str, Any] | None:
    """Passed through; ``score_threshold`` (0..1) drops weaker results, ``ranker`` and
    ``hybrid_search`` are accepted and have no effect (ranking is always BM25)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be an object", param=where)
    threshold = raw.get("score_threshold")
    if threshold is not None and (not _is_number(threshold) or not 0 <= threshold <= 1):
        raise UserError(f"{where}.score_threshold must be a number from 0 to 1", param=where)
    ranker = raw.get("ranker")
    if ranker is not None and not isinstance(ranker, str):
        raise UserError(f"{where}.ranker must be a string", param=where)
    return dict(raw)


def score_threshold(ranking_options: dict[str, Any] | None) -> float:
    value = (ranking_options or {}).get("score_threshold")
    return float(value) if value is not None else 0.0


def normalize_file_search_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a ``file_search`` tool entry; return its echoed shape. Whether the vector
    stores exist is checked when a response starts (:meth:`FileSearchToolset.start`)."""
    ids = raw.get("vector_store_ids")
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, str) and i.strip() for i in ids)
    ):
        raise UserError(
            f"{where}.vector_store_ids must be a non-empty list of vector store ids",
            param=f"{where}.vector_store_ids",
        )
    return {
        "type": "file_search",
        "vector_store_ids": list(dict.fromkeys(ids)),
        "filters": check_filters(raw.get("filters"), f"{where}.filters"),
        "max_num_results": check_max_results(
            raw.get("max_num_results"), f"{where}.max_num_results"
        ),
        "ranking_options": check_ranking_options(
            raw.get("ranking_options"), f"{where}.ranking_options"
        ),
    }


# ---- indexing and search -------------------------------------------------------------------


def prepare_file(
    file_id: str,
    filename: str,
    content: bytes,
    attributes: Attributes | None = None,
    strategy: ChunkingStrategy | None = None,
) -> IndexedFile:
    """Extract and chunk one file (CPU work; run it off the event loop). A file that is not
    text gives an :class:`IndexedFile` with ``error`` set, never an exception."""
    try:
        text = extract_text(filename, content)
    except UnsupportedFile as exc:
        return IndexedFile(file_id, attributes or {}, error=FileError(exc.code, exc.message))
    return IndexedFile(
        file_id,
        attributes or {},
        chunks=chunk_text(text, strategy),
        usage_bytes=len(text.encode()),
    )


async def index_file(
    store: FileStore,
    project: str,
    file_id: str,
    attributes: Attributes | None = None,
    strategy: ChunkingStrategy | None = None,
) -> IndexedFile:
    """Read an uploaded file and prepare it for a vector store; NotFound if it is unknown."""
    record, content = await store.get_file_content(project, file_id)
    return await anyio.to_thread.run_sync(
        prepare_file, file_id, record.filename, content, attributes, strategy
    )


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ranked chunk."""

    vector_store_id: str
    file_id: str
    filename: str
    score: float
    """BM25, normalized to 0..1."""
    text: str
    attributes: Attributes


def _rank(
    chunks: list[StoredChunk], queries: list[str], limit: int, threshold: float
) -> list[SearchHit]:
    unique: list[StoredChunk] = []
    seen: set[tuple[str, str]] = set()
    for chunk in chunks:  # a file in two searched stores counts once
        if (chunk.file_id, chunk.text) not in seen:
            seen.add((chunk.file_id, chunk.text))
            unique.append(chunk)
    ranked = rank([c.text for c in unique], queries, limit=limit, score_threshold=threshold)
    return [
        SearchHit(
            vector_store_id=unique[i].vector_store_id,
            file_id=unique[i].file_id,
            filename=unique[i].filename,
            score=score,
            text=unique[i].text,
            attributes=unique[i].attributes,
        )
        for i, score in ranked
    ]


async def search_files(
    store: FileStore,
    project: str,
    vector_store_ids: list[str],
    queries: list[str],
    *,
    max_num_results: int = DEFAULT_MAX_RESULTS,
    filters: dict[str, Any] | None = None,
    score_threshold: float = 0.0,
) -> list[SearchHit]:
    """The best chunks of some vector stores for any of ``queries``, best first; raises
    NotFound for an unknown store. ``filters`` must have passed :func:`check_filters`."""
    chunks = await store.chunks_of(project, vector_store_ids)
    if filters is not None:
        chunks = [c for c in chunks if matches(c.attributes, filters)]
    return await anyio.to_thread.run_sync(_rank, chunks, queries, max_num_results, score_threshold)


# ---- the tool ------------------------------------------------------------------------------

_DESCRIPTION = (
    "Search the uploaded files for passages relevant to the user's question. "
    "Pass one or more short keyword queries; the best matching passages come back "
    "with their file names."
)
_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queries": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "Search queries, e.g. the key words of the question.",
        }
    },
    "required": ["queries"],
    "additionalProperties": False,
}


def _queries(arguments: str) -> list[str]:
    try:
        args = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        raise ValueError("the arguments are not valid JSON") from None
    raw = args.get("queries") if isinstance(args, dict) else None
    if raw is None and isinstance(args, dict):
        raw = args.get("query")  # small models sometimes send one query
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ValueError("'queries' must be a list of strings")
    queries = [q.strip() for q in raw if isinstance(q, str) and q.strip()]
    if not queries:
        raise ValueError("'queries' must hold at least one non-empty string")
    return queries[:MAX_QUERIES]


class FileSearchToolset(Toolset):
    """The ``file_search`` tool of one response: one function, ``file_search(queries)``,
    searching the tool's vector stores.

    :meth:`start` raises NotFound (HTTP 404) when a vector store does not exist, before the
    model is called. A call that fails later (bad arguments, a store deleted meanwhile)
    gives a ``file_search_call`` item with status ``failed`` and an ``error``.
    """

    label = "file_search"

    def __init__(self, tool: dict[str, Any], store: FileStore, project: str) -> None:
        self.tool = normalize_file_search_tool(tool, "tool")
        self.store = store
        self.project = project
        self.vector_store_ids: list[str] = self.tool["vector_store_ids"]
        self.max_num_results: int = self.tool["max_num_results"] or DEFAULT_MAX_RESULTS
        self.filters: dict[str, Any] | None = self.tool["filters"]
        self.score_threshold = score_threshold(self.tool["ranking_options"])

    async def start(self, ctx: ToolContext) -> list[Item]:
        await self.store.check_vector_stores(self.project, self.vector_store_ids)
        return []

    def functions(self) -> list[FunctionSpec]:
        return [FunctionSpec("file_search", _DESCRIPTION, _PARAMETERS)]

    async def run(self, call: ToolCall, ctx: ToolContext, **extra: Any) -> Item:
        item: Item = {"id": new_id("fs"), "type": "file_search_call", "queries": []}
        try:
            item["queries"] = _queries(call.arguments)
            hits = await search_files(
                self.store,
                self.project,
                self.vector_store_ids,
                item["queries"],
                max_num_results=self.max_num_results,
                filters=self.filters,
                score_threshold=self.score_threshold,
            )
        except (ValueError, CupolaError) as exc:
            message = exc.message if isinstance(exc, CupolaError) else str(exc)
            return {**item, "status": "failed", "results": [], "error": message}
        return {
            **item,
            "status": "completed",
            "results": [
                {
                    "file_id": h.file_id,
                    "filename": h.filename,
                    "score": h.score,
                    "text": h.text,
                    "attributes": h.attributes,
                }
                for h in hits
            ],
        }


def render_file_search_call(item: Item) -> Rendered:
    """A finished ``file_search_call`` as the model sees it: the call with its queries, and
    the results' text, each headed by its file name and score."""
    queries = [q for q in item.get("queries") or [] if isinstance(q, str)]
    call = ToolCall(
        call_id=str(item.get("id") or "fs"),
        name="file_search",
        arguments=orjson.dumps({"queries": queries}).decode(),
    )
    if item.get("status") == "failed":
        return Rendered(call, f"File search failed: {item.get('error') or 'unknown error'}")
    results = [r for r in item.get("results") or [] if isinstance(r, dict)]
    if not results:
        return Rendered(call, "No matching passages were found in the files.")
    blocks = []
    for n, result in enumerate(results, 1):
        score = result.get("score")
        head = f"[{n}] {result.get('filename') or result.get('file_id') or 'file'}"
        if isinstance(score, int | float):
            head += f" (score {score:.2f})"
        blocks.append(f"{head}\n{str(result.get('text') or '').strip()}")
    return Rendered(call, "\n\n".join(blocks))
