"""Migration 0006: a database at 0005 gains the ``spans`` table (its data untouched), the
store writes and reads spans there, and the downgrade removes it again; SQLite and
PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cupola.store import SqlStore
from cupola.store.engine import MIGRATIONS, create_engine
from cupola.store.tables import spans
from cupola.store.traces import RunFilter, SpanRecord
from live_server import postgres_database

POSTGRES_URL = os.environ.get("CUPOLA_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        assert POSTGRES_URL is not None
        with postgres_database(POSTGRES_URL) as fresh:
            yield fresh


def _alembic(engine: sa.Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


async def test_upgrade_adds_spans_and_downgrade_removes_them(url: str) -> None:
    engine = create_engine(url)
    try:
        _alembic(engine, "upgrade", "0005")
        assert "spans" not in _tables(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO responses (id, project, status, body, input_items, created_at)"
                    " VALUES ('resp_old', 'default', 'completed', '{}', '[]', 1)"
                )
            )
        store = SqlStore(url)
        await store.open()  # upgrades to head, as `cupola serve` does
        span = SpanRecord(
            trace_id="ab" * 16,
            span_id="cd" * 8,
            parent_id=None,
            project="default",
            name="invoke_agent",
            kind="internal",
            operation="invoke_agent",
            start_ns=10,
            end_ns=20,
            status="unset",
            outcome="completed",
            response_id="resp_old",
            attributes={"gen_ai.usage.input_tokens": 3, "cupola.request.tools": ["a", "b"]},
            events=[{"name": "cupola.retry", "time_ns": 15, "attributes": {}}],
        )
        # the migration builds the same indexes as the metadata the store is written against
        # (each traces-list filter and the page cursor has one: bench/bench_traces_list.py)
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("spans")}
        assert {i.name for i in spans.indexes} <= indexes
        assert {"ix_spans_outcome", "ix_spans_start", "ix_spans_run_id"} <= indexes
        store.insert_spans_sync([span])
        assert await store.get_trace("default", "ab" * 16) == [span]
        page = await store.list_runs("default", RunFilter(response_id="resp_old"))
        assert page.data == [span]
        assert (await store.get_response("default", "resp_old")).body == {}
        await store.close()
        _alembic(engine, "downgrade", "0005")
        assert "spans" not in _tables(engine) and "responses" in _tables(engine)
    finally:
        engine.dispose()
