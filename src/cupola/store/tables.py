"""The database schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")

# Versioned resources (agents, toolboxes; evaluators, datasets, guardrail policies next):
# numbered, content-addressed versions under a parent row that keeps the next number (never
# reused), named labels pointing at versions, and every move of a label, for audit.
resources = sa.Table(
    "resources",
    metadata,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("next_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

resource_versions = sa.Table(
    "resource_versions",
    metadata,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("content", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint(
        "project", "kind", "name", "content_hash", name="uq_resource_versions_hash"
    ),
)

resource_labels = sa.Table(
    "resource_labels",
    metadata,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

resource_label_moves = sa.Table(
    "resource_label_moves",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("previous", sa.Integer, nullable=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Index("ix_resource_label_moves_name", "project", "kind", "name", "seq"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

conversation_items = sa.Table(
    "conversation_items",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("data", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_conversation_items_conv_seq", "conversation_id", "seq"),
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("previous_response_id", sa.String(64), nullable=True),
    sa.Column("conversation_id", sa.String(64), nullable=True),
    sa.Column("body", Json, nullable=False),
    sa.Column("input_items", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("project", sa.String(64), nullable=False, server_default="default"),
    sa.Column("role", sa.String(16), nullable=False, server_default="admin"),
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("credential_type", sa.String(32), nullable=False),
    sa.Column("secret", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

vector_stores = sa.Table(
    "vector_stores",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_active_at", sa.BigInteger, nullable=True),
)

vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    sa.Column("vector_store_id", sa.String(64), primary_key=True),
    sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("usage_bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

file_chunks = sa.Table(
    "file_chunks",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("vector_store_id", sa.String(64), nullable=False),
    sa.Column("file_id", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_file_chunks_store_file", "vector_store_id", "file_id"),
)

vector_store_file_batches = sa.Table(
    "vector_store_file_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("vector_store_id", sa.String(64), nullable=False),
    sa.Column("file_ids", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

RUN_SPAN = sa.text("operation = 'invoke_agent'")
"""The condition of the partial indexes on ``spans``."""

# Trace spans (cupola.telemetry): one row per finished span. The run's span (operation
# ``invoke_agent``) carries the columns the traces list filters on; ``seq`` orders and pages
# the list (a span is written once, when it ends, so ``seq`` follows end time).
spans = sa.Table(
    "spans",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("span_id", sa.String(16), nullable=False),
    sa.Column("parent_id", sa.String(16), nullable=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("operation", sa.String(32), nullable=True),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("error_type", sa.String(128), nullable=True),
    sa.Column("response_id", sa.String(64), nullable=True),
    sa.Column("conversation_id", sa.String(64), nullable=True),
    sa.Column("agent_name", sa.String(64), nullable=True),
    sa.Column("agent_version", sa.String(32), nullable=True),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("events", Json, nullable=False),
    sa.UniqueConstraint("trace_id", "span_id", name="uq_spans_trace_span"),
    # Partial: only runs' spans are listed and filtered, so model and tool spans (most
    # rows) cost no entry in these (queries must spell the condition out as a literal).
    sa.Index("ix_spans_runs", "project", "seq", sqlite_where=RUN_SPAN, postgresql_where=RUN_SPAN),
    sa.Index(
        "ix_spans_agent",
        "project",
        "agent_name",
        "seq",
        sqlite_where=RUN_SPAN,
        postgresql_where=RUN_SPAN,
    ),
    sa.Index(
        "ix_spans_outcome",
        "project",
        "outcome",
        "seq",
        sqlite_where=RUN_SPAN,
        postgresql_where=RUN_SPAN,
    ),
    sa.Index(
        "ix_spans_start", "project", "start_ns", sqlite_where=RUN_SPAN, postgresql_where=RUN_SPAN
    ),
    sa.Index("ix_spans_run_id", "span_id", sqlite_where=RUN_SPAN, postgresql_where=RUN_SPAN),
    sa.Index("ix_spans_response", "response_id", sqlite_where=RUN_SPAN, postgresql_where=RUN_SPAN),
    sa.Index(
        "ix_spans_conversation",
        "conversation_id",
        sqlite_where=RUN_SPAN,
        postgresql_where=RUN_SPAN,
    ),
    sa.Index("ix_spans_end", "end_ns"),
)
