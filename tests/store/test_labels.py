"""Labels in the versioned-resource store: set, move, remove, list, history; what they
protect; ``latest`` implicit; a toolbox's ``default`` is a label."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cupola.exceptions import NotFound, UserError
from cupola.store import SqlStore
from cupola.store.agents import AGENT
from cupola.store.toolboxes import TOOLBOX

P = "default"
GITHUB = {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"}


def definition(text: str) -> dict[str, str]:
    return {"kind": "prompt", "model": "echo", "instructions": text}


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore(database_url)
    await s.open()
    yield s
    await s.close()


async def agent_with_versions(store: SqlStore, name: str, count: int) -> None:
    for i in range(count):
        await store.create_agent_version(P, name, definition(f"v{i + 1}"))


async def test_set_move_remove_and_history(store: SqlStore, unique: str) -> None:
    name = f"a-{unique}"
    await agent_with_versions(store, name, 3)
    assert await store.list_labels(P, AGENT, name) == []

    prod = await store.set_label(P, AGENT, name, "prod", 1)
    assert (prod.label, prod.version) == ("prod", 1)
    assert (await store.get_agent_version(P, name, "prod")).version == 1
    await store.set_label(P, AGENT, name, "staging", 3)
    await store.set_label(P, AGENT, name, "prod", 2)  # promotion moves the label
    await store.set_label(P, AGENT, name, "prod", 2)  # a no-op: not recorded again
    assert (await store.get_agent_version(P, name, "prod")).version == 2
    assert [(x.label, x.version) for x in await store.list_labels(P, AGENT, name)] == [
        ("prod", 2),
        ("staging", 3),
    ]
    # ``latest`` is implicit: the highest version, whatever the labels say.
    assert (await store.get_agent_version(P, name, "latest")).version == 3
    assert (await store.get_agent_version(P, name)).version == 3

    await store.remove_label(P, AGENT, name, "staging")
    with pytest.raises(NotFound):
        await store.get_agent_version(P, name, "staging")
    history = await store.label_history(P, AGENT, name)
    assert [(m.label, m.previous, m.version) for m in history.data] == [
        ("staging", 3, None),
        ("prod", 1, 2),
        ("staging", None, 3),
        ("prod", None, 1),
    ]
    only_prod = await store.label_history(P, AGENT, name, label="prod", order="asc")
    assert [(m.previous, m.version) for m in only_prod.data] == [(None, 1), (1, 2)]
    page = await store.label_history(P, AGENT, name, limit=1)
    assert page.has_more and len(page.data) == 1
    rest = await store.label_history(P, AGENT, name, after=page.data[0].seq)
    assert [m.seq for m in rest.data] == [m.seq for m in history.data[1:]]


async def test_bad_labels_and_targets_are_refused(store: SqlStore, unique: str) -> None:
    name = f"a-{unique}"
    await agent_with_versions(store, name, 1)
    for bad in ("latest", "3", "", "-x", "a b", "x" * 65):
        with pytest.raises(UserError) as info:
            await store.set_label(P, AGENT, name, bad, 1)
        assert info.value.status_code == 400
    with pytest.raises(NotFound):
        await store.set_label(P, AGENT, name, "prod", 9)
    with pytest.raises(NotFound):
        await store.set_label(P, AGENT, f"nope-{unique}", "prod", 1)
    with pytest.raises(NotFound):
        await store.remove_label(P, AGENT, name, "prod")
    with pytest.raises(NotFound):
        await store.list_labels(P, AGENT, f"nope-{unique}")


async def test_a_labelled_version_is_kept_until_the_label_moves(
    store: SqlStore, unique: str
) -> None:
    name = f"a-{unique}"
    await agent_with_versions(store, name, 2)
    await store.set_label(P, AGENT, name, "prod", 1)
    with pytest.raises(UserError) as info:
        await store.delete_agent_version(P, name, 1)
    assert info.value.code == "labelled_version" and "'prod'" in info.value.message
    await store.set_label(P, AGENT, name, "prod", 2)
    await store.delete_agent_version(P, name, 1)
    # Deleting the only version deletes the agent and its labels; the removal is recorded.
    await store.delete_agent_version(P, name, 2)
    with pytest.raises(NotFound):
        await store.get_agent_version(P, name)
    history = await store.label_history(P, AGENT, name)
    assert (history.data[0].label, history.data[0].version) == ("prod", None)
    # A deleted agent is gone with its counter: recreated, it starts again at 1 (as before).
    again, _ = await store.create_agent_version(P, name, definition("new"))
    assert again.version == 1 and await store.list_labels(P, AGENT, name) == []


async def test_numbers_are_never_reused_while_the_resource_exists(
    store: SqlStore, unique: str
) -> None:
    name = f"a-{unique}"
    await agent_with_versions(store, name, 3)
    await store.delete_agent_version(P, name, 3)
    fresh, created = await store.create_agent_version(P, name, definition("v4"))
    assert created and fresh.version == 4


async def test_the_toolbox_default_is_a_label(store: SqlStore, unique: str) -> None:
    name = f"tb-{unique}"
    await store.create_toolbox_version(P, name, [GITHUB])
    await store.create_toolbox_version(P, name, [GITHUB], "second")
    assert [(x.label, x.version) for x in await store.list_labels(P, TOOLBOX, name)] == [
        ("default", 1)
    ]
    # Moving the label is promoting; PATCH default_version does the same.
    await store.set_label(P, TOOLBOX, name, "default", 2)
    toolbox = await store.get_toolbox(P, name)
    assert toolbox.default_version == 2 and toolbox.labels == {"default": 2}
    await store.set_default_version(P, name, 1)
    await store.set_label(P, TOOLBOX, name, "prod", 2)
    assert (await store.get_toolbox_version(P, name, "prod")).version == 2
    assert (await store.get_toolbox_version(P, name)).version == 1  # the default
    assert (await store.get_toolbox_version(P, name, "latest")).version == 2
    with pytest.raises(UserError) as info:
        await store.remove_label(P, TOOLBOX, name, "default")
    assert info.value.code == "required_label"
    with pytest.raises(UserError) as info:
        await store.delete_toolbox_version(P, name, 1)
    assert info.value.code == "default_version"
    history = await store.label_history(P, TOOLBOX, name, label="default", order="asc")
    assert [(m.previous, m.version) for m in history.data] == [(None, 1), (1, 2), (2, 1)]


async def test_agents_and_toolboxes_of_one_name_are_apart(store: SqlStore, unique: str) -> None:
    name = f"same-{unique}"
    await agent_with_versions(store, name, 2)
    await store.create_toolbox_version(P, name, [GITHUB])
    await store.set_label(P, AGENT, name, "prod", 2)
    assert [x.label for x in await store.list_labels(P, TOOLBOX, name)] == ["default"]
    await store.delete_toolbox(P, name)
    assert (await store.get_agent_version(P, name, "prod")).version == 2
