"""The SQLite batch writer: a failed write leaves nothing behind, alone or in a batch."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from cupola.store.writer import BatchWriter


def _insert_then_fail(conn: sa.Connection, value: str) -> None:
    conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
    raise ValueError(f"refused {value}")


def _insert(conn: sa.Connection, value: str) -> str:
    conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
    return value


def _values(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT v FROM t ORDER BY v"))]


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (v TEXT)"))
    return engine


def test_a_lone_failed_write_is_rolled_back_and_raised(engine: sa.Engine) -> None:
    async def main() -> None:
        writer = BatchWriter(engine, threading.Lock())
        try:
            with pytest.raises(ValueError, match="refused a"):
                await writer.submit(_insert_then_fail, "a")
            assert await writer.submit(_insert, "b") == "b"
        finally:
            writer.close()

    asyncio.run(main())
    assert _values(engine) == ["b"]


def test_a_failed_write_in_a_batch_leaves_the_others(engine: sa.Engine) -> None:
    async def main() -> None:
        writer = BatchWriter(engine, threading.Lock())
        lock = threading.Lock()
        writer.lock = lock
        try:
            with lock:  # hold the writer so the three queue into one batch
                futures = [
                    writer.submit(_insert, "a"),
                    writer.submit(_insert_then_fail, "x"),
                    writer.submit(_insert, "c"),
                ]
                await asyncio.sleep(0.05)
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            writer.close()
        assert results[0] == "a" and results[2] == "c"
        assert isinstance(results[1], ValueError)

    asyncio.run(main())
    assert _values(engine) == ["a", "c"]
