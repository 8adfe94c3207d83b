"""Migration 0005: a database created at 0003 with agents and toolboxes keeps every version,
number, hash, timestamp and default after the upgrade, on SQLite and PostgreSQL, and the
downgrade gives the old tables back."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cupola.store import SqlStore
from cupola.store.engine import MIGRATIONS, create_engine
from cupola.store.toolboxes import TOOLBOX
from cupola.store.versions import content_hash
from live_server import postgres_database

POSTGRES_URL = os.environ.get("CUPOLA_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
P = "default"
DEFINITION = {"kind": "prompt", "model": "echo", "instructions": "Be brief."}
GITHUB = {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"}
NOTES = {"type": "mcp", "server_label": "notes", "command": ["python", "-m", "notes"]}


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


def _fill_at_0003(engine: sa.Engine) -> None:
    """What a cupola of revision 0003 stored: two agents (one with a deleted version, so the
    next number is ahead of the highest) and a toolbox whose default is not its latest."""
    meta = sa.MetaData()
    meta.reflect(engine)
    agents, agent_versions = meta.tables["agents"], meta.tables["agent_versions"]
    toolboxes, toolbox_versions = meta.tables["toolboxes"], meta.tables["toolbox_versions"]
    second = {**DEFINITION, "instructions": "Be thorough."}
    with engine.begin() as conn:
        conn.execute(
            agents.insert(),
            [
                {"project": P, "name": "helper", "next_version": 4, "created_at": 100},
                {"project": "other", "name": "helper", "next_version": 2, "created_at": 150},
            ],
        )
        conn.execute(
            agent_versions.insert(),
            [
                {
                    "project": P,
                    "name": "helper",
                    "version": 1,
                    "content_hash": content_hash(DEFINITION, "one", {"team": "a"}),
                    "description": "one",
                    "metadata": {"team": "a"},
                    "definition": DEFINITION,
                    "created_at": 100,
                },
                {
                    "project": P,
                    "name": "helper",
                    "version": 3,
                    "content_hash": content_hash(second, None, {}),
                    "description": None,
                    "metadata": {},
                    "definition": second,
                    "created_at": 120,
                },
                {
                    "project": "other",
                    "name": "helper",
                    "version": 1,
                    "content_hash": content_hash(DEFINITION, None, {}),
                    "description": None,
                    "metadata": {},
                    "definition": DEFINITION,
                    "created_at": 150,
                },
            ],
        )
        conn.execute(
            toolboxes.insert(),
            [
                {
                    "project": P,
                    "name": "kit",
                    "default_version": 1,
                    "next_version": 3,
                    "created_at": 200,
                    "updated_at": 260,
                }
            ],
        )
        conn.execute(
            toolbox_versions.insert(),
            [
                {
                    "project": P,
                    "name": "kit",
                    "version": number,
                    "content_hash": content_hash({"tools": tools}, None, {}),
                    "description": None,
                    "metadata": {},
                    "tools": tools,
                    "created_at": at,
                }
                for number, tools, at in ((1, [GITHUB], 200), (2, [GITHUB, NOTES], 250))
            ],
        )


async def test_upgrade_keeps_agents_and_toolboxes(url: str) -> None:
    engine = create_engine(url)
    _alembic(engine, "upgrade", "0003")
    _fill_at_0003(engine)
    engine.dispose()

    store = SqlStore(url)
    await store.open()  # upgrades to head, as `cupola serve` does
    try:
        latest = await store.get_agent_version(P, "helper")
        assert (latest.version, latest.created_at) == (3, 120)
        assert latest.definition["instructions"] == "Be thorough."
        first = await store.get_agent_version(P, "helper", 1)
        assert (first.description, first.metadata, first.definition) == (
            "one",
            {"team": "a"},
            DEFINITION,
        )
        versions = await store.list_agent_versions(P, "helper", order="asc")
        assert [v.version for v in versions.data] == [1, 3]
        assert (await store.get_agent_version("other", "helper")).created_at == 150
        # Identical content is still recognised by its hash; numbers continue, never reused.
        again, created = await store.create_agent_version(
            P, "helper", DEFINITION, "one", {"team": "a"}
        )
        assert not created and again.version == 1
        fresh, created = await store.create_agent_version(P, "helper", {**DEFINITION, "top_p": 1})
        assert created and fresh.version == 4

        kit = await store.get_toolbox(P, "kit")
        assert kit.default_version == 1 and kit.latest.version == 2
        assert kit.labels == {"default": 1}
        assert (kit.created_at, kit.updated_at) == (200, 260)
        assert (await store.get_toolbox_version(P, "kit")).tools == [GITHUB]
        assert (await store.get_toolbox_version(P, "kit", 2)).tools == [GITHUB, NOTES]
        same, created = await store.create_toolbox_version(P, "kit", [GITHUB, NOTES])
        assert not created and same.version == 2
        newer, created = await store.create_toolbox_version(P, "kit", [NOTES])
        assert created and newer.version == 3
        # The default became a label, its setting recorded as the first move.
        moves = await store.label_history(P, TOOLBOX, "kit")
        assert [(m.label, m.version, m.previous, m.at) for m in moves.data] == [
            ("default", 1, None, 260)
        ]
    finally:
        await store.close()


def test_downgrade_gives_the_old_tables_back(url: str) -> None:
    engine = create_engine(url)
    _alembic(engine, "upgrade", "0003")
    _fill_at_0003(engine)
    _alembic(engine, "upgrade", "head")
    _alembic(engine, "downgrade", "0003")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert {"agents", "agent_versions", "toolboxes", "toolbox_versions"} <= tables
        assert not tables & {"resources", "resource_versions", "resource_labels"}
        rows: list[Any] = list(
            conn.execute(
                sa.text("SELECT name, version FROM agent_versions ORDER BY project, version")
            )
        )
        assert [tuple(r) for r in rows] == [("helper", 1), ("helper", 3), ("helper", 1)]
        kit = conn.execute(
            sa.text("SELECT default_version, next_version, updated_at FROM toolboxes")
        ).one()
        assert tuple(kit) == (1, 3, 260)
        tools = conn.execute(
            sa.text("SELECT tools FROM toolbox_versions WHERE version = 2")
        ).scalar_one()
        assert (tools if isinstance(tools, list) else json.loads(tools)) == [GITHUB, NOTES]
    engine.dispose()
