"""azure-ai-projects reads cupola's connections (list, get, get_default) over HTTPS, and
asking for credentials fails clearly."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import ApiKeyCredentials, ConnectionType, CustomCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from live_server import LiveServer


@pytest.fixture
def http(tls: tuple[LiveServer, Path]) -> Iterator[httpx.Client]:
    live, cert = tls
    with httpx.Client(
        base_url=live.project_url,
        params={"api-version": "v1"},
        verify=ssl.create_default_context(cafile=str(cert)),
    ) as client:
        yield client


def test_list_and_get_connections(
    project: AIProjectClient, http: httpx.Client, unique: str
) -> None:
    key = f"sk-azure-{unique}-0a1b2c3d"
    api = f"search-{unique}"
    custom = f"custom-{unique}"
    body = {
        "type": "ApiKey",
        "target": "https://search.example.com",
        "credentials": {"type": "ApiKey", "key": key},
        "metadata": {"region": "westeurope"},
        "isDefault": True,
    }
    assert http.put(f"/connections/{api}", json=body).status_code == 200
    custom_body = {
        "type": "CustomKeys",
        "target": "https://custom.example.com",
        "credentials": {"type": "CustomKeys", "keys": {"X-Api-Key": key}},
    }
    assert http.put(f"/connections/{custom}", json=custom_body).status_code == 200

    got = project.connections.get(api)
    assert (got.name, got.type, got.target, got.is_default) == (
        api,
        "ApiKey",
        "https://search.example.com",
        True,
    )
    assert got.id.startswith("conn_") and got.metadata == {"region": "westeurope"}
    assert isinstance(got.credentials, ApiKeyCredentials)
    assert got.credentials.api_key is None  # no secret on the wire
    assert isinstance(project.connections.get(custom).credentials, CustomCredential)

    listed = {c.name: c for c in project.connections.list()}
    assert {api, custom} <= set(listed)
    typed = [c.name for c in project.connections.list(connection_type=ConnectionType.API_KEY)]
    assert api in typed and custom not in typed
    default = project.connections.get_default(ConnectionType.API_KEY)
    assert default.name == api
    for c in listed.values():
        assert key not in str(c.as_dict())

    with pytest.raises(ResourceNotFoundError):
        project.connections.get(f"missing-{unique}")


def test_credentials_are_never_returned(
    project: AIProjectClient, http: httpx.Client, unique: str
) -> None:
    name = f"locked-{unique}"
    body = {
        "type": "ApiKey",
        "target": "https://locked.example.com",
        "credentials": {"type": "ApiKey", "key": f"sk-locked-{unique}-9z8y"},
    }
    assert http.put(f"/connections/{name}", json=body).status_code == 200
    with pytest.raises(HttpResponseError) as info:
        project.connections.get(name, include_credentials=True)
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.code == "secrets_not_returned"
    assert "never returns stored secrets" in str(info.value)
    assert f"sk-locked-{unique}" not in str(info.value)
