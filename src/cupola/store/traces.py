"""Trace spans: written in batches by the telemetry exporter (off the request path), read by
the traces API, purged by age."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from cupola.domain import Page
from cupola.exceptions import NotFound
from cupola.store.base import SqlBase, page_of
from cupola.store.tables import spans

RUN_OPERATION = "invoke_agent"
"""The operation of a run's span: what the traces list lists."""
IS_RUN = spans.c.operation == sa.literal_column("'invoke_agent'")
"""The partial indexes' condition, as a literal (a bound parameter would not match it)."""
PURGE_CHUNK = 5000
"""Rows deleted per transaction by :meth:`TraceStore.purge_spans_sync` (a short lock each)."""


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span as stored. The run's span (``operation == "invoke_agent"``) fills
    the columns the traces list filters on; other spans leave them None."""

    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits."""
    parent_id: str | None
    project: str
    name: str
    kind: str
    """``internal``, ``client``, ``server`` ..."""
    operation: str | None
    """``gen_ai.operation.name``: ``invoke_agent``, ``chat``, ``execute_tool``."""
    start_ns: int
    end_ns: int
    status: str
    """``ok``, ``error`` or ``unset`` (the span's OpenTelemetry status)."""
    outcome: str | None = None
    """A run's status (``completed``, ``incomplete``, ``failed``, ``cancelled``), a tool
    call's (``completed``, ``failed`` ...)."""
    error_type: str | None = None
    response_id: str | None = None
    conversation_id: str | None = None
    agent_name: str | None = None
    agent_version: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What the traces list keeps (every field optional; all given must match)."""

    agent_name: str | None = None
    agent_version: str | None = None
    conversation_id: str | None = None
    response_id: str | None = None
    outcome: str | None = None
    start_ns: int | None = None
    """Runs that started at or after this instant."""
    end_ns: int | None = None
    """Runs that started before this instant."""


_COLUMNS = SpanRecord.__slots__
_JSON_COLUMNS = ("attributes", "events")


def _json(value: Any) -> str:
    # PostgreSQL's jsonb refuses the NUL escape; a span's text is not worth failing a batch
    return orjson.dumps(value, default=str).decode().replace("\\u0000", "\\ufffd")


def _row(record: SpanRecord) -> tuple[Any, ...]:
    return tuple(
        _json(getattr(record, name)) if name in _JSON_COLUMNS else getattr(record, name)
        for name in _COLUMNS
    )


def _insert_sql(conn: sa.Connection) -> str:
    """The INSERT in the driver's own parameter style (jsonb casts on PostgreSQL)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    postgres = conn.dialect.name == "postgresql"
    values = [
        f"CAST({mark} AS jsonb)" if postgres and name in _JSON_COLUMNS else mark
        for name in _COLUMNS
    ]
    return f"INSERT INTO spans ({', '.join(_COLUMNS)}) VALUES ({', '.join(values)})"


def _record(row: sa.Row[Any]) -> SpanRecord:
    data = row._mapping
    return SpanRecord(**{name: data[name] for name in SpanRecord.__slots__})


class TraceStore(SqlBase):
    def insert_spans_sync(self, records: Sequence[SpanRecord]) -> None:
        """Store finished spans (one transaction; SQLite's writer lock is taken, so this
        never races the batching writer). One driver-level ``executemany`` with the JSON
        columns encoded by orjson: a span row costs a few microseconds, not SQLAlchemy's
        per-row parameter processing."""
        if not records:
            return
        rows = [_row(r) for r in records]
        self.write_sync(lambda conn: conn.exec_driver_sql(_insert_sql(conn), rows))

    def purge_spans_sync(self, before_ns: int) -> int:
        """Delete spans that ended before ``before_ns``, a chunk per transaction; returns how
        many were deleted."""
        total = 0
        while True:

            def run(conn: sa.Connection) -> int:
                chunk = sa.select(spans.c.seq).where(spans.c.end_ns < before_ns).limit(PURGE_CHUNK)
                result = conn.execute(spans.delete().where(spans.c.seq.in_(chunk)))
                return int(result.rowcount or 0)

            deleted = self.write_sync(run)
            total += deleted
            if deleted < PURGE_CHUNK:
                return total

    async def list_runs(
        self, project: str, where: RunFilter, *, limit: int = 20, after: str | None = None
    ) -> Page[SpanRecord]:
        """The runs' spans matching ``where``, most recently finished first; ``after`` is the
        span id of the last run of the previous page."""

        def run(conn: sa.Connection) -> Page[SpanRecord]:
            query = sa.select(spans).where(spans.c.project == project, IS_RUN)
            for column, value in (
                (spans.c.agent_name, where.agent_name),
                (spans.c.agent_version, where.agent_version),
                (spans.c.conversation_id, where.conversation_id),
                (spans.c.response_id, where.response_id),
                (spans.c.outcome, where.outcome),
            ):
                if value is not None:
                    query = query.where(column == value)
            if where.start_ns is not None:
                query = query.where(spans.c.start_ns >= where.start_ns)
            if where.end_ns is not None:
                query = query.where(spans.c.start_ns < where.end_ns)
            if after is not None:
                cursor = sa.select(spans.c.seq).where(
                    spans.c.span_id == after, spans.c.project == project, IS_RUN
                )
                query = query.where(spans.c.seq < cursor.scalar_subquery())
            rows = list(conn.execute(query.order_by(spans.c.seq.desc()).limit(limit + 1)))
            return page_of([_record(r) for r in rows[:limit]], len(rows) > limit)

        return await self._read(run)

    async def get_trace(self, project: str, trace_id: str) -> list[SpanRecord]:
        """Every stored span of a trace, by start time; raises NotFound when there is none."""

        def run(conn: sa.Connection) -> list[SpanRecord]:
            rows = conn.execute(
                sa.select(spans)
                .where(spans.c.trace_id == trace_id, spans.c.project == project)
                .order_by(spans.c.start_ns, spans.c.seq)
            )
            return [_record(r) for r in rows]

        found = await self._read(run)
        if not found:
            raise NotFound(f"no trace with id {trace_id!r}", param="trace_id", code="not_found")
        return found

    async def trace_id_of_response(self, project: str, response_id: str) -> str:
        """The trace a response's run was recorded in; raises NotFound when none is stored
        (yet: spans are written a moment after the run ends)."""

        def run(conn: sa.Connection) -> str | None:
            found: str | None = conn.execute(
                sa.select(spans.c.trace_id)
                .where(spans.c.response_id == response_id, spans.c.project == project, IS_RUN)
                .order_by(spans.c.seq.desc())
                .limit(1)
            ).scalar()
            return found

        trace_id = await self._read(run)
        if trace_id is None:
            raise NotFound(
                f"no trace recorded for response {response_id!r}",
                param="response_id",
                code="not_found",
            )
        return trace_id
