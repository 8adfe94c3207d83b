"""API keys belong to one project and carry a role.

Keys created before this revision were valid on every project with every right; they become
``admin`` keys of the project named ``default`` (the column defaults), so they keep working
where they were used (the default project) and stop working anywhere else. A server whose
project has another name needs new keys: ``cupola keys create NAME --project P --role R``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("project", sa.String(64), nullable=False, server_default="default")
        )
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="admin"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
        batch.drop_column("project")
