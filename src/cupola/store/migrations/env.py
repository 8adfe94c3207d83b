"""Alembic environment: migrations run on the connection cupola hands in (see store/engine.py)."""

from __future__ import annotations

from alembic import context

from cupola.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - cupola always passes a connection
    raise RuntimeError("cupola migrations run through cupola.store.engine.migrate()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
