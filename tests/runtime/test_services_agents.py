"""The agent, toolbox, label and connection services on each store (SQLite, and PostgreSQL
when CUPOLA_TEST_POSTGRES_URL is set): every rule holds when the service is called directly,
as the routes and ``cupola serve --apply`` call it, and nothing is stored when it refuses."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cupola.exceptions import NotFound, PermissionDenied, UserError
from cupola.server.app import build_services
from cupola.server.services import Services
from cupola.store.agents import AGENT
from cupola.store.toolboxes import TOOLBOX
from live_server import make_settings

P = "default"
STDIO = {"type": "mcp", "server_label": "notes", "command": [sys.executable, "-c", "pass"]}
REMOTE = {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"}


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    s = build_services(make_settings(database_url))
    await s.store.open()
    yield s
    await s.tools.aclose()
    await s.models.aclose()
    await s.store.close()


def echo_agent(**extra: Any) -> dict[str, Any]:
    return {"model": "echo", "instructions": "Be brief.", **extra}


# ---- agents --------------------------------------------------------------------------------


async def test_an_agent_version_is_checked_stored_and_deduplicated(
    services: Services, unique: str
) -> None:
    name = f"svc-{unique}"
    first, created = await services.agents.create_version(
        P, name, echo_agent(), description="d", metadata={"team": "a"}, may_start_processes=False
    )
    assert created and first.version == 1 and first.definition["kind"] == "prompt"
    again, created = await services.agents.create_version(
        P, name, echo_agent(), description="d", metadata={"team": "a"}, may_start_processes=False
    )
    assert not created and again.version == 1  # identical content: the same version
    assert (await services.agents.get_version(P, name)).version == 1
    await services.agents.delete_agent(P, name)
    with pytest.raises(NotFound):
        await services.agents.get_version(P, name)


@pytest.mark.parametrize(
    ("definition", "error", "param"),
    [
        (echo_agent(model="no-such-deployment"), NotFound, "definition.model"),
        (
            echo_agent(tools=[{"type": "toolbox", "name": "nope"}]),
            NotFound,
            "definition.tools[0].name",
        ),
        (
            echo_agent(tools=[REMOTE, {"type": "file_search", "vector_store_ids": ["vs_nope"]}]),
            NotFound,
            "definition.tools[1]",
        ),
        (echo_agent(tools=[STDIO]), PermissionDenied, "definition.tools[0].command"),
        (echo_agent(temperature=7), UserError, "definition.temperature"),
        ({"kind": "hosted", "model": "echo"}, UserError, "definition.kind"),
        ("not an object", UserError, "definition"),
    ],
    ids=["deployment", "toolbox", "vector-store", "command", "temperature", "kind", "shape"],
)
async def test_a_refused_agent_version_names_the_field_and_stores_nothing(
    services: Services, unique: str, definition: Any, error: type[Exception], param: str
) -> None:
    name = f"svc-bad-{unique}"
    with pytest.raises(error) as caught:
        await services.agents.create_version(P, name, definition, may_start_processes=False)
    assert getattr(caught.value, "param", None) == param
    with pytest.raises(NotFound):
        await services.agents.get_version(P, name)


async def test_a_missing_toolbox_version_or_label_is_refused(
    services: Services, unique: str
) -> None:
    box = f"box-{unique}"
    await services.toolboxes.create_version(P, box, [REMOTE], may_start_processes=False)
    for selector, param in (("7", "version"), ("prod", "version")):
        tool = {"type": "toolbox", "name": box, "version": selector}
        with pytest.raises(NotFound) as caught:
            await services.agents.create_version(
                P, f"a-{unique}", echo_agent(tools=[tool]), may_start_processes=False
            )
        assert caught.value.param == f"definition.tools[0].{param}"
    ok, _ = await services.agents.create_version(
        P,
        f"a-{unique}",
        echo_agent(tools=[{"type": "toolbox", "name": box}]),
        may_start_processes=False,
    )
    assert ok.version == 1


async def test_only_a_caller_who_may_start_processes_defines_a_command(
    services: Services, unique: str
) -> None:
    version, _ = await services.agents.create_version(
        P, f"stdio-{unique}", echo_agent(tools=[STDIO]), may_start_processes=True
    )
    assert version.definition["tools"][0]["command"] == STDIO["command"]


async def test_a_bad_agent_name_or_description_is_refused(services: Services) -> None:
    with pytest.raises(UserError):
        await services.agents.create_version(P, "no spaces", echo_agent(), may_start_processes=True)
    with pytest.raises(UserError) as caught:
        await services.agents.create_version(
            P, "ok-name", echo_agent(), description="x" * 513, may_start_processes=True
        )
    assert caught.value.param == "description"


# ---- toolboxes -----------------------------------------------------------------------------


async def test_toolbox_versions_and_their_default(services: Services, unique: str) -> None:
    box = f"box-{unique}"
    first, created = await services.toolboxes.create_version(
        P, box, [REMOTE], may_start_processes=False
    )
    assert created and first.version == 1
    second, _ = await services.toolboxes.create_version(
        P, box, [REMOTE, STDIO], description="with notes", may_start_processes=True
    )
    assert second.version == 2
    toolbox = await services.toolboxes.set_default(P, box, "2")
    assert toolbox.default_version == 2
    with pytest.raises(NotFound):
        await services.toolboxes.set_default(P, box, 9)
    with pytest.raises(UserError) as caught:
        await services.toolboxes.set_default(P, box, None)
    assert caught.value.param == "default_version"
    await services.toolboxes.delete_version(P, box, 1)
    with pytest.raises(NotFound):
        await services.store.get_toolbox_version(P, box, 1)


@pytest.mark.parametrize(
    ("tools", "unsupported", "error", "param"),
    [
        ([REMOTE, STDIO], None, PermissionDenied, "tools[1].command"),
        (None, None, UserError, "tools"),
        ([{"type": "web_search_preview"}], None, UserError, None),
        ([REMOTE], {"skills": [{"name": "x"}]}, UserError, "skills"),
    ],
    ids=["command", "missing", "unknown-type", "skills"],
)
async def test_a_refused_toolbox_version_stores_nothing(
    services: Services,
    unique: str,
    tools: Any,
    unsupported: dict[str, Any] | None,
    error: type[Exception],
    param: str | None,
) -> None:
    box = f"box-bad-{unique}"
    with pytest.raises(error) as caught:
        await services.toolboxes.create_version(
            P, box, tools, may_start_processes=False, unsupported=unsupported
        )
    if param is not None:
        assert getattr(caught.value, "param", None) == param
    with pytest.raises(NotFound):
        await services.store.get_toolbox(P, box)


# ---- labels --------------------------------------------------------------------------------


async def test_labels_are_set_moved_read_and_removed(services: Services, unique: str) -> None:
    name = f"lab-{unique}"
    for text in ("one", "two"):
        await services.agents.create_version(
            P, name, echo_agent(instructions=text), may_start_processes=False
        )
    assert (await services.labels.set_label(P, AGENT, name, "prod", "1")).version == 1
    assert (await services.labels.set_label(P, AGENT, name, "prod", 2)).version == 2
    assert (await services.labels.get_label(P, AGENT, name, "prod")).version == 2
    assert (await services.agents.get_version(P, name, "prod")).version == 2
    history = await services.labels.history(P, AGENT, name, label="prod")
    assert [(m.previous, m.version) for m in history.data] == [(1, 2), (None, 1)]
    with pytest.raises(UserError):
        await services.labels.set_label(P, AGENT, name, "latest", 1)  # implicit, never set
    with pytest.raises(UserError):
        await services.labels.set_label(P, AGENT, name, "prod", "two")
    with pytest.raises(NotFound):
        await services.labels.set_label(P, AGENT, name, "prod", 3)
    await services.labels.remove_label(P, AGENT, name, "prod")
    with pytest.raises(NotFound) as caught:
        await services.labels.get_label(P, AGENT, name, "prod")
    assert caught.value.param == "label"
    # a toolbox's default is a label like any other
    box = f"box-{unique}"
    await services.toolboxes.create_version(P, box, [REMOTE], may_start_processes=False)
    labels = await services.labels.list_labels(P, TOOLBOX, box)
    assert [(x.label, x.version) for x in labels] == [("default", 1)]


# ---- connections ---------------------------------------------------------------------------


async def test_a_connection_is_checked_then_stored(services: Services, unique: str) -> None:
    name = f"conn-{unique}"
    saved, created = await services.connections.put(
        P,
        name,
        type="CustomKeys",
        target="https://example.com",
        credentials={"type": "ApiKey", "key": "sk-test-1234"},
    )
    assert created and saved.name == name and saved.credential_type == "ApiKey"
    with pytest.raises(UserError) as caught:
        await services.connections.put(
            P,
            name,
            type="CustomKeys",
            target="x",
            credentials={"type": "ApiKey", "key": "k"},
            named="other",
        )
    assert caught.value.param == "name"
    with pytest.raises(UserError) as caught:
        await services.connections.put(P, name, type="CustomKeys", target="x", credentials="k")
    assert caught.value.param == "credentials"
    with pytest.raises(UserError):
        await services.connections.put(
            P, "bad name", type="CustomKeys", target="x", credentials={"type": "None"}
        )
