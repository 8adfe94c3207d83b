"""One store for versioned resources, with named labels and their history.

Agents and toolboxes move from their own tables (``agents``/``agent_versions``,
``toolboxes``/``toolbox_versions``) into ``resources``/``resource_versions`` (``kind`` says
which), keeping every version number, content hash and timestamp and each name's next number.
An agent version's ``content`` is its definition; a toolbox version's is ``{"tools": [...]}``
(the object its content hash was always computed over). A toolbox's ``default_version``
becomes its ``default`` label, recorded as the first move of that label. The downgrade moves
them back (other labels and the label history are lost).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BATCH = 500

_meta = sa.MetaData()
agents = sa.Table(
    "agents",
    _meta,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("next_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
agent_versions = sa.Table(
    "agent_versions",
    _meta,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("definition", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("project", "name", "content_hash", name="uq_agent_versions_hash"),
)
toolboxes = sa.Table(
    "toolboxes",
    _meta,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("default_version", sa.Integer, nullable=False),
    sa.Column("next_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
toolbox_versions = sa.Table(
    "toolbox_versions",
    _meta,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("tools", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("project", "name", "content_hash", name="uq_toolbox_versions_hash"),
)
resources = sa.Table(
    "resources",
    _meta,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("next_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
resource_versions = sa.Table(
    "resource_versions",
    _meta,
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
    _meta,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
resource_label_moves = sa.Table(
    "resource_label_moves",
    _meta,
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
NEW = (resources, resource_versions, resource_labels, resource_label_moves)
OLD = (agents, agent_versions, toolboxes, toolbox_versions)


def _copy(conn: sa.Connection, query: sa.Select[Any], into: sa.Table, shape: Any) -> None:
    """Rows of ``query``, reshaped by ``shape`` (row -> dict), inserted in batches."""
    batch: list[dict[str, Any]] = []
    for row in conn.execute(query).fetchall():
        batch.append(shape(row))
        if len(batch) >= BATCH:
            conn.execute(into.insert(), batch)
            batch = []
    if batch:
        conn.execute(into.insert(), batch)


def upgrade() -> None:
    conn = op.get_bind()
    for table in NEW:
        table.create(conn)
    _copy(
        conn,
        sa.select(agents),
        resources,
        lambda r: {
            "project": r.project,
            "kind": "agent",
            "name": r.name,
            "next_version": r.next_version,
            "created_at": r.created_at,
            "updated_at": r.created_at,
        },
    )
    _copy(
        conn,
        sa.select(agent_versions),
        resource_versions,
        lambda r: {
            "project": r.project,
            "kind": "agent",
            "name": r.name,
            "version": r.version,
            "content_hash": r.content_hash,
            "description": r.description,
            "metadata": r.metadata,
            "content": r.definition,
            "created_at": r.created_at,
        },
    )
    _copy(
        conn,
        sa.select(toolboxes),
        resources,
        lambda r: {
            "project": r.project,
            "kind": "toolbox",
            "name": r.name,
            "next_version": r.next_version,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        },
    )
    _copy(
        conn,
        sa.select(toolbox_versions),
        resource_versions,
        lambda r: {
            "project": r.project,
            "kind": "toolbox",
            "name": r.name,
            "version": r.version,
            "content_hash": r.content_hash,
            "description": r.description,
            "metadata": r.metadata,
            "content": {"tools": r.tools},
            "created_at": r.created_at,
        },
    )
    default = {"kind": "toolbox", "label": "default"}
    _copy(
        conn,
        sa.select(toolboxes),
        resource_labels,
        lambda r: {
            **default,
            "project": r.project,
            "name": r.name,
            "version": r.default_version,
            "updated_at": r.updated_at,
        },
    )
    _copy(
        conn,
        sa.select(toolboxes).order_by(toolboxes.c.updated_at),
        resource_label_moves,
        lambda r: {
            **default,
            "project": r.project,
            "name": r.name,
            "version": r.default_version,
            "previous": None,
            "at": r.updated_at,
        },
    )
    for table in reversed(OLD):
        op.drop_table(table.name)


def downgrade() -> None:
    conn = op.get_bind()
    for table in OLD:
        table.create(conn)
    kind = resources.c.kind
    _copy(
        conn,
        sa.select(resources).where(kind == "agent"),
        agents,
        lambda r: {
            "project": r.project,
            "name": r.name,
            "next_version": r.next_version,
            "created_at": r.created_at,
        },
    )
    _copy(
        conn,
        sa.select(resource_versions).where(resource_versions.c.kind == "agent"),
        agent_versions,
        lambda r: {
            "project": r.project,
            "name": r.name,
            "version": r.version,
            "content_hash": r.content_hash,
            "description": r.description,
            "metadata": r.metadata,
            "definition": r.content,
            "created_at": r.created_at,
        },
    )
    labels = resource_labels.c
    default = (
        sa.select(labels.version)
        .where(
            labels.project == resources.c.project,
            labels.kind == "toolbox",
            labels.name == resources.c.name,
            labels.label == "default",
        )
        .scalar_subquery()
    )
    _copy(
        conn,
        sa.select(resources, default.label("default_version")).where(kind == "toolbox"),
        toolboxes,
        lambda r: {
            "project": r.project,
            "name": r.name,
            "default_version": r.default_version or 1,
            "next_version": r.next_version,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        },
    )
    _copy(
        conn,
        sa.select(resource_versions).where(resource_versions.c.kind == "toolbox"),
        toolbox_versions,
        lambda r: {
            "project": r.project,
            "name": r.name,
            "version": r.version,
            "content_hash": r.content_hash,
            "description": r.description,
            "metadata": r.metadata,
            "tools": r.content["tools"],
            "created_at": r.created_at,
        },
    )
    for table in reversed(NEW):
        op.drop_table(table.name)
