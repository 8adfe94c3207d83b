"""azure-ai-projects ``project.toolboxes`` against a live cupola served over HTTPS (the SDK
sends bearer tokens only over TLS), with a static token credential."""

from __future__ import annotations

from typing import Any

import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import (
    CodeInterpreterToolboxTool,
    FileSearchToolboxTool,
    MCPToolboxTool,
    OpenApiAnonymousAuthDetails,
    OpenApiFunctionDefinition,
    OpenApiToolboxTool,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

SPEC: dict[str, Any] = {
    "openapi": "3.0.0",
    "info": {"title": "w", "version": "1"},
    "servers": [{"url": "http://127.0.0.1:9/api"}],
    "paths": {
        "/weather": {
            "get": {"operationId": "getWeather", "responses": {"200": {"description": "ok"}}}
        }
    },
}


def test_toolbox_lifecycle(project: AIProjectClient, unique: str) -> None:
    name = f"support-{unique}"
    github = MCPToolboxTool(server_label="github", server_url="https://example.com/mcp")
    v1 = project.toolboxes.create_version(
        name, tools=[github], description="first", metadata={"team": "support"}
    )
    assert (v1.id, v1.name, v1.version) == (f"{name}:1", name, "1")
    assert v1.description == "first" and v1.metadata == {"team": "support"}
    assert isinstance(v1.tools[0], MCPToolboxTool) and v1.tools[0].server_label == "github"
    assert v1.created_at.year >= 2025  # a unix timestamp, parsed as a datetime

    same = project.toolboxes.create_version(
        name, tools=[github], description="first", metadata={"team": "support"}
    )
    assert same.version == "1" and same.created_at == v1.created_at  # content-addressed

    weather = OpenApiToolboxTool(
        openapi=OpenApiFunctionDefinition(
            name="weather", spec=SPEC, auth=OpenApiAnonymousAuthDetails()
        )
    )
    v2 = project.toolboxes.create_version(
        name,
        tools=[
            github,
            weather,
            CodeInterpreterToolboxTool(),
            FileSearchToolboxTool(vector_store_ids=["vs_docs"]),
        ],
        description="second",
    )
    assert v2.version == "2"
    assert [type(t).__name__ for t in v2.tools] == [
        "MCPToolboxTool",
        "OpenApiToolboxTool",
        "CodeInterpreterToolboxTool",
        "FileSearchToolboxTool",
    ]

    toolbox = project.toolboxes.get(name)
    assert toolbox.name == name and toolbox.id == name
    assert toolbox.default_version == "1"  # a new version does not move the default
    assert toolbox.versions.latest.version == "2"
    assert toolbox["mcp_endpoint"].endswith(f"/toolboxes/{name}/mcp")

    assert name in [t.name for t in project.toolboxes.list()]
    assert [v.version for v in project.toolboxes.list_versions(name)] == ["2", "1"]
    assert [v.version for v in project.toolboxes.list_versions(name, order="asc")] == ["1", "2"]
    got = project.toolboxes.get_version(name, "2")
    assert got.description == "second" and len(got.tools) == 4
    assert got.tools[1].openapi.name == "weather"  # type: ignore[attr-defined]

    promoted = project.toolboxes.update(name, default_version="2")
    assert promoted.default_version == "2" and project.toolboxes.get(name).default_version == "2"

    # The default version cannot be deleted while others exist (a 400, never retried).
    with pytest.raises(HttpResponseError) as info:
        project.toolboxes.delete_version(name, "2")
    assert info.value.status_code == 400
    assert info.value.error is not None and info.value.error.code == "default_version"

    assert project.toolboxes.delete_version(name, "1") is None
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.get_version(name, "1")
    v3 = project.toolboxes.create_version(name, tools=[github], description="third")
    assert v3.version == "3"  # numbers are never reused

    assert project.toolboxes.delete(name) is None
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.get(name)
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.delete(name)


def test_list_pages_through_every_toolbox(project: AIProjectClient, unique: str) -> None:
    names = {f"pager-{unique}-{i}" for i in range(5)}
    for name in names:
        project.toolboxes.create_version(
            name, tools=[{"type": "mcp", "server_label": "s", "command": ["srv"]}]
        )
    assert names <= {t.name for t in project.toolboxes.list(limit=2)}
    name = sorted(names)[0]
    for i in range(4):
        project.toolboxes.create_version(name, tools=[CodeInterpreterToolboxTool(name=f"ci{i}")])
    assert [v.version for v in project.toolboxes.list_versions(name, limit=2)] == [
        "5",
        "4",
        "3",
        "2",
        "1",
    ]


def test_bad_input_is_refused(project: AIProjectClient, unique: str) -> None:
    name = f"bad-{unique}"
    with pytest.raises(HttpResponseError) as info:
        project.toolboxes.create_version(
            name,
            tools=[{"type": "web_search"}],  # not a type a cupola toolbox holds
        )
    assert info.value.status_code == 400
    assert info.value.error is not None and info.value.error.code == "unsupported_tool"
    assert "tools[0]" in str(info.value)
    with pytest.raises(HttpResponseError) as info:
        project.toolboxes.create_version(name, tools=[MCPToolboxTool(server_label="nowhere")])
    # no server_url: a server declared in cupola.yaml, and none is called "nowhere"
    assert info.value.status_code == 404
    assert info.value.error is not None and info.value.error.code == "mcp_server_not_found"
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.get(name)

    project.toolboxes.create_version(name, tools=[CodeInterpreterToolboxTool()])
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.update(name, default_version="9")
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.get_version(name, "9")
    with pytest.raises(ResourceNotFoundError):
        project.toolboxes.list_versions(f"nope-{unique}").next()
