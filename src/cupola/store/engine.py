"""Engines for SQLite (WAL, the embedded default) and PostgreSQL, and schema migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from cupola.domain.limits import NUL, check_no_nul
from cupola.exceptions import ConfigError, MissingDependency, UserError

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x6375706F6C61  # "cupola": one migrator at a time across replicas


def _json_dumps(value: Any) -> str:
    text = orjson.dumps(value).decode()
    if "\\u0000" in text:  # NUL, or a literal backslash-u0000: look closer
        check_no_nul(value)
    return text


def _params_hold_nul(params: Any) -> bool:
    values = params.values() if isinstance(params, dict) else params
    for value in values:
        if isinstance(value, str):
            if NUL in value:
                return True
        elif isinstance(value, dict | list | tuple) and _params_hold_nul(value):
            return True
    return False


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, params: Any, _context: Any, _many: bool
) -> None:
    """PostgreSQL's text cannot hold NUL: refuse it (on every backend alike) as bad input
    before the database answers with an error of its own."""
    if params and _params_hold_nul(params):
        raise UserError("text may not contain the NUL character (\\u0000)", code="invalid_value")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and explicit BEGINs."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"database_url {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = sa.create_engine(
                parsed,
                pool_size=16,
                max_overflow=16,
                pool_pre_ping=True,
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
            )
        except ModuleNotFoundError:
            raise MissingDependency("psycopg", "postgres") from None
        event.listen(engine, "before_cursor_execute", _refuse_nul)
        return engine
    if parsed.get_backend_name() != "sqlite":
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=16,
        max_overflow=16,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )
    # No cursor listener here: SQLite holds NUL, the edge refuses it in bodies and URLs, and
    # JSON columns refuse it in _json_dumps. A listener on every statement cost a fifth of
    # stored-response throughput at concurrency 1 (bench.bench_access_log, 2026-12-03).

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the lock up front, so a transaction never fails to upgrade mid-way.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe with several replicas)."""
    from alembic import command  # imported here: only start-up needs it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()  # the lock is held by the session, beyond this transaction
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
