"""Running store work off the event loop, one transaction per call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cupola.domain import Page
from cupola.store.engine import create_engine, is_sqlite, migrate
from cupola.store.writer import BatchWriter

T = TypeVar("T")


class SqlBase:
    """Owns the engine. ``_read``/``_write`` run a function with a connection inside one
    transaction in a worker thread, so the event loop never waits on the database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        self._sqlite = is_sqlite(self.engine)
        # SQLite has one writer; queueing writers here is cheaper than SQLITE_BUSY retries.
        self._write_lock = threading.Lock() if self._sqlite else None
        self._writer = BatchWriter(self.engine, self._write_lock) if self._write_lock else None
        self._migrated = False

    def migrate(self) -> None:
        """Create or upgrade the schema (blocking; once per process is enough)."""
        if not self._migrated:
            migrate(self.engine)
            self._migrated = True

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self.migrate)

    async def close(self) -> None:
        if self._writer is not None:
            await anyio.to_thread.run_sync(self._writer.close)
        await anyio.to_thread.run_sync(self.engine.dispose)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.connect() as conn, conn.begin():
            return fn(conn, *args)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        if self._write_lock is None:
            with self.engine.begin() as conn:
                return fn(conn, *args)
        with self._write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                return fn(conn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(self.read_sync, fn, *args))

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._writer is not None:
            result: T = await self._writer.submit(fn, *args)
            return result
        return await anyio.to_thread.run_sync(partial(self.write_sync, fn, *args))


def paginate(
    conn: sa.Connection,
    query: sa.Select[Any],
    key: sa.ColumnElement[Any],
    *,
    limit: int,
    order: str,
    after: Any = None,
    before: Any = None,
) -> tuple[list[sa.Row[Any]], bool]:
    """Cursor pagination on ``key`` (unique, sortable): rows after/before a cursor value."""
    descending = order == "desc"
    if after is not None:
        query = query.where(key < after if descending else key > after)
    if before is not None:
        query = query.where(key > before if descending else key < before)
    query = query.order_by(key.desc() if descending else key.asc()).limit(limit + 1)
    rows = list(conn.execute(query))
    return rows[:limit], len(rows) > limit


def page_of(items: list[T], has_more: bool) -> Page[T]:
    return Page(data=items, has_more=has_more)
