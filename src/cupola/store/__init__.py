"""Persistence: SQLAlchemy Core over SQLite (default) or PostgreSQL, Alembic migrations."""

from cupola.store.protocol import Store
from cupola.store.sql import SqlStore

__all__ = ["SqlStore", "Store"]
