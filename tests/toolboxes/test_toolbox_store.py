"""The toolbox store: immutable content-addressed versions, a default version that moves
only when promoted, deletes that never leave a toolbox without its default."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cupola.exceptions import NotFound, UserError
from cupola.store import SqlStore

GITHUB = {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"}
NOTES = {"type": "mcp", "server_label": "notes", "command": ["python", "-m", "notes"]}
P = "default"


@pytest.fixture
async def store(database_url: str, unique: str) -> AsyncIterator[SqlStore]:
    """The session database (SQLite, and PostgreSQL when configured); names are unique."""
    s = SqlStore(database_url)
    await s.open()
    yield s
    await s.close()


async def test_identical_content_returns_the_existing_version(store: SqlStore, unique: str) -> None:
    name = f"tb-{unique}"
    v1, created = await store.create_toolbox_version(P, name, [GITHUB], "first", {"k": "v"})
    assert created and v1.version == 1 and v1.tools == [GITHUB]
    same, created = await store.create_toolbox_version(P, name, [GITHUB], "first", {"k": "v"})
    assert not created and same == v1
    # Description and metadata are content too.
    v2, created = await store.create_toolbox_version(P, name, [GITHUB], "second", {"k": "v"})
    assert created and v2.version == 2 and v2.content_hash != v1.content_hash
    v3, _ = await store.create_toolbox_version(P, name, [GITHUB], "first", {"k": "w"})
    assert v3.version == 3
    # Key order does not matter: the hash is over canonical JSON.
    reordered = {"server_url": GITHUB["server_url"], "server_label": "github", "type": "mcp"}
    again, created = await store.create_toolbox_version(P, name, [reordered], "first", {"k": "v"})
    assert not created and again.version == 1


async def test_the_first_version_is_the_default_until_promoted(
    store: SqlStore, unique: str
) -> None:
    name = f"tb-{unique}"
    await store.create_toolbox_version(P, name, [GITHUB])
    await store.create_toolbox_version(P, name, [GITHUB, NOTES])
    toolbox = await store.get_toolbox(P, name)
    assert toolbox.default_version == 1 and toolbox.latest.version == 2
    assert toolbox.default.tools == [GITHUB] and toolbox.latest.tools == [GITHUB, NOTES]
    assert (await store.get_toolbox_version(P, name)).version == 1
    assert (await store.get_toolbox_version(P, name, 2)).version == 2

    promoted = await store.set_default_version(P, name, 2)
    assert promoted.default_version == 2 and promoted.default == promoted.latest
    assert promoted.updated_at >= toolbox.updated_at
    assert (await store.get_toolbox_version(P, name)).tools == [GITHUB, NOTES]
    rolled_back = await store.set_default_version(P, name, 1)
    assert rolled_back.default_version == 1
    # A new version still does not move the default.
    await store.create_toolbox_version(P, name, [NOTES])
    assert (await store.get_toolbox(P, name)).default_version == 1

    with pytest.raises(NotFound, match="version 9"):
        await store.set_default_version(P, name, 9)
    with pytest.raises(NotFound, match="not found"):
        await store.set_default_version(P, f"nope-{unique}", 1)
    assert (await store.get_toolbox(P, name)).default_version == 1


async def test_unknown_toolboxes_and_versions(store: SqlStore, unique: str) -> None:
    name = f"tb-{unique}"
    with pytest.raises(NotFound):
        await store.get_toolbox(P, name)
    with pytest.raises(NotFound):
        await store.get_toolbox_version(P, name)
    with pytest.raises(NotFound):
        await store.list_toolbox_versions(P, name)
    with pytest.raises(NotFound):
        await store.delete_toolbox(P, name)
    await store.create_toolbox_version(P, name, [GITHUB])
    with pytest.raises(NotFound, match="version 2"):
        await store.get_toolbox_version(P, name, 2)
    with pytest.raises(NotFound, match="version 2"):
        await store.delete_toolbox_version(P, name, 2)
    with pytest.raises(NotFound):
        await store.get_toolbox(f"other-{unique}", name)  # projects are separate


async def test_deleting_versions(store: SqlStore, unique: str) -> None:
    name = f"tb-{unique}"
    for tools in ([GITHUB], [NOTES], [GITHUB, NOTES]):
        await store.create_toolbox_version(P, name, tools)
    with pytest.raises(UserError) as info:
        await store.delete_toolbox_version(P, name, 1)
    assert info.value.code == "default_version" and info.value.status_code == 400
    await store.delete_toolbox_version(P, name, 3)
    assert (await store.get_toolbox(P, name)).latest.version == 2
    v4, _ = await store.create_toolbox_version(P, name, [GITHUB, NOTES])
    assert v4.version == 4  # numbers are never reused while the toolbox exists
    await store.set_default_version(P, name, 4)
    await store.delete_toolbox_version(P, name, 1)
    await store.delete_toolbox_version(P, name, 2)
    page = await store.list_toolbox_versions(P, name)
    assert [v.version for v in page.data] == [4]
    # The only version may go: the toolbox goes with it.
    await store.delete_toolbox_version(P, name, 4)
    with pytest.raises(NotFound):
        await store.get_toolbox(P, name)
    fresh, _ = await store.create_toolbox_version(P, name, [GITHUB])
    assert fresh.version == 1 and (await store.get_toolbox(P, name)).default_version == 1


async def test_delete_toolbox(store: SqlStore, unique: str) -> None:
    name = f"tb-{unique}"
    await store.create_toolbox_version(P, name, [GITHUB])
    await store.create_toolbox_version(P, name, [NOTES])
    await store.delete_toolbox(P, name)
    with pytest.raises(NotFound):
        await store.get_toolbox_version(P, name, 2)
    with pytest.raises(NotFound):
        await store.list_toolbox_versions(P, name)


async def test_lists_page_by_name_and_number(store: SqlStore, unique: str) -> None:
    names = [f"pager-{unique}-{i}" for i in range(5)]
    for name in names:
        await store.create_toolbox_version(P, name, [GITHUB])
    seen: list[str] = []
    after: Any = None
    while True:
        page = await store.list_toolboxes(P, limit=2, order="asc", after=after)
        seen += [t.name for t in page.data]
        if not page.has_more:
            break
        after = page.data[-1].name
    assert [n for n in seen if n.startswith(f"pager-{unique}")] == names
    assert seen == sorted(seen)

    name = names[0]
    for i in range(4):
        await store.create_toolbox_version(P, name, [GITHUB], f"v{i + 2}")
    newest = await store.list_toolbox_versions(P, name, limit=2)
    assert [v.version for v in newest.data] == [5, 4] and newest.has_more
    rest = await store.list_toolbox_versions(P, name, limit=10, after=4)
    assert [v.version for v in rest.data] == [3, 2, 1] and not rest.has_more
    oldest = await store.list_toolbox_versions(P, name, order="asc", before=3)
    assert [v.version for v in oldest.data] == [1, 2]


async def test_concurrent_creates(store: SqlStore, unique: str) -> None:
    name = f"race-{unique}"
    results = await asyncio.gather(
        *(store.create_toolbox_version(P, name, [GITHUB], f"d{i}") for i in range(6))
    )
    assert sorted(v.version for v, _ in results) == [1, 2, 3, 4, 5, 6]
    assert (await store.get_toolbox(P, name)).default_version == 1
    same = await asyncio.gather(
        *(store.create_toolbox_version(P, f"{name}-same", [NOTES]) for _ in range(4))
    )
    assert {v.version for v, _ in same} == {1} and sum(created for _, created in same) == 1
