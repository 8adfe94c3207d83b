"""Trace spans: the ``spans`` table cupola.telemetry writes finished spans to.

A new table; nothing existing changes. The downgrade drops it (and the spans in it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
RUN_SPAN = sa.text("operation = 'invoke_agent'")
"""Only runs' spans are listed and filtered: the indexes for that skip the other spans.
Each filter of the traces list and its paging cursor (a run's span id) has one
(bench/bench_traces_list.py times them over a million spans)."""


def upgrade() -> None:
    op.create_table(
        "spans",
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
    )
    for name, columns in (
        ("ix_spans_runs", ["project", "seq"]),
        ("ix_spans_agent", ["project", "agent_name", "seq"]),
        ("ix_spans_outcome", ["project", "outcome", "seq"]),
        ("ix_spans_start", ["project", "start_ns"]),
        ("ix_spans_run_id", ["span_id"]),
        ("ix_spans_response", ["response_id"]),
        ("ix_spans_conversation", ["conversation_id"]),
    ):
        op.create_index(name, "spans", columns, sqlite_where=RUN_SPAN, postgresql_where=RUN_SPAN)
    op.create_index("ix_spans_end", "spans", ["end_ns"])


def downgrade() -> None:
    op.drop_table("spans")
