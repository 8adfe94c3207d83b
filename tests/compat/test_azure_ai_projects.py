"""azure-ai-projects against a live cupola served over HTTPS (the SDK sends bearer tokens
only over TLS), with a static token credential."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import PromptAgentDefinition
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from live_server import LiveServer


def test_agent_versions_lifecycle(project: AIProjectClient, unique: str) -> None:
    name = f"concierge-{unique}"
    v1 = project.agents.create_version(
        agent_name=name,
        definition=PromptAgentDefinition(model="echo", instructions="Be brief.", temperature=0.2),
        description="first",
        metadata={"team": "travel"},
    )
    assert (v1.name, v1.version, v1.id) == (name, "1", f"{name}:1")
    assert isinstance(v1.definition, PromptAgentDefinition)
    assert v1.definition.model == "echo" and v1.definition.instructions == "Be brief."
    assert v1.metadata == {"team": "travel"}

    same = project.agents.create_version(
        agent_name=name,
        definition=PromptAgentDefinition(model="echo", instructions="Be brief.", temperature=0.2),
        description="first",
        metadata={"team": "travel"},
    )
    assert same.version == "1" and same.created_at == v1.created_at

    v2 = project.agents.create_version(
        agent_name=name, definition=PromptAgentDefinition(model="echo", instructions="Be briefer.")
    )
    assert v2.version == "2"

    agent = project.agents.get(agent_name=name)
    assert agent.name == name and agent.versions.latest.version == "2"
    assert name in [a.name for a in project.agents.list()]
    versions = list(project.agents.list_versions(agent_name=name))
    assert [v.version for v in versions] == ["2", "1"]
    assert [v.version for v in project.agents.list_versions(agent_name=name, order="asc")] == [
        "1",
        "2",
    ]
    got = project.agents.get_version(agent_name=name, agent_version="1")
    assert got.definition.instructions == "Be brief."  # type: ignore[union-attr]

    deleted = project.agents.delete_version(agent_name=name, agent_version="1")
    assert deleted.deleted and deleted.version == "1"
    with pytest.raises(ResourceNotFoundError):
        project.agents.get_version(agent_name=name, agent_version="1")
    v3 = project.agents.create_version(
        agent_name=name, definition=PromptAgentDefinition(model="echo", instructions="Third.")
    )
    assert v3.version == "3"  # numbers are never reused

    assert project.agents.delete(agent_name=name).deleted
    with pytest.raises(ResourceNotFoundError):
        project.agents.get(agent_name=name)


def test_agent_list_pages_through_every_agent(project: AIProjectClient, unique: str) -> None:
    names = {f"pager-{unique}-{i}" for i in range(5)}
    for name in names:
        project.agents.create_version(
            agent_name=name, definition=PromptAgentDefinition(model="echo")
        )
    listed = {a.name for a in project.agents.list(limit=2)}
    assert names <= listed


def test_invalid_agent_is_refused(project: AIProjectClient, unique: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        project.agents.create_version(
            agent_name=f"bad-{unique}", definition=PromptAgentDefinition(model="no-such-deployment")
        )
    assert info.value.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        project.agents.get(agent_name=f"bad-{unique}")


def test_deployments(project: AIProjectClient) -> None:
    names = [d.name for d in project.deployments.list()]
    assert {"echo", "weather-bot", "local-small"} <= set(names)
    echo = project.deployments.get("echo")
    assert echo.name == "echo" and echo.type == "ModelDeployment"
    with pytest.raises(ResourceNotFoundError):
        project.deployments.get("nope")


def test_openai_client_holds_a_three_turn_conversation(
    project: AIProjectClient, tls: tuple[LiveServer, Path], unique: str
) -> None:
    _live, cert = tls
    name = f"chatty-{unique}"
    project.agents.create_version(
        agent_name=name, definition=PromptAgentDefinition(model="echo", instructions="Help.")
    )
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(cert)))
    openai_client = project.get_openai_client(http_client=http)
    conversation = openai_client.conversations.create()
    replies = []
    for text in ("turn one", "turn two", "turn three"):
        response = openai_client.responses.create(
            conversation=conversation.id,
            input=text,
            extra_body={"agent_reference": {"name": name, "type": "agent_reference"}},
        )
        assert response.status == "completed"
        replies.append(response.output_text)
    http.close()
    model_input = replies[2].splitlines()
    assert model_input == [
        "system: Help.",
        "user: turn one",
        f"assistant: {replies[0]}".replace("\n", " / "),
        "user: turn two",
        f"assistant: {replies[1]}".replace("\n", " / "),
        "user: turn three",
    ]
