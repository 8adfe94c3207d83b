"""Vector store file batches: which files one ``file_batches`` call attached.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_ids", Json, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vector_store_file_batches")
