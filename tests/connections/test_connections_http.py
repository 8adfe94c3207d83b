"""``/connections`` over HTTP: the Foundry shapes, the management extensions, validation,
and that a stored secret never appears in any reply nor, in clear, in the database."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cupola.secrets import SecretBox, SecretRegistry
from live_server import LiveServer


@pytest.fixture
def http(conn_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=conn_server.project_url, params={"api-version": "v1"}, timeout=30
    ) as client:
        yield client


class Recorder:
    """Every response body seen, to check a secret never appears in any of them."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.bodies: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        self.bodies.append(response.text)
        return response

    def assert_never_saw(self, *secrets: str) -> None:
        assert self.bodies
        for body in self.bodies:
            for secret in secrets:
                assert secret not in body, body


def api_key_body(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ApiKey",
        "target": "https://api.example.com/v1",
        "credentials": {"type": "ApiKey", "key": key},
        **extra,
    }


def test_create_get_list_delete(http: httpx.Client, unique: str) -> None:
    name = f"weather-{unique}"
    key = f"sk-weather-{unique}-0123456789"
    put = http.put(
        f"/connections/{name}",
        json=api_key_body(key, metadata={"header_name": "X-Api-Key", "team": "travel"}),
    )
    assert put.status_code == 200, put.text
    created = put.json()
    assert created == {
        "name": name,
        "id": created["id"],
        "type": "ApiKey",
        "target": "https://api.example.com/v1",
        "isDefault": False,
        "credentials": {"type": "ApiKey"},
        "metadata": {"header_name": "X-Api-Key", "team": "travel"},
    }
    assert created["id"].startswith("conn_")

    got = http.get(f"/connections/{name}")
    assert got.status_code == 200 and got.json() == created
    by_id = http.get(f"/connections/{created['id']}")
    assert by_id.status_code == 200 and by_id.json()["name"] == name

    listed = http.get("/connections").json()
    assert set(listed) == {"value"}
    assert created in listed["value"]
    assert created in http.get("/connections", params={"connectionType": "ApiKey"}).json()["value"]
    assert http.get("/connections", params={"connectionType": "OpenAPI"}).json()["value"] == [
        c for c in listed["value"] if c["type"] == "OpenAPI"
    ]

    # Replacing keeps the id; the credential type may change.
    replaced = http.put(
        f"/connections/{name}",
        json={
            "type": "CustomKeys",
            "target": "https://api.example.com/v2",
            "credentials": {"type": "CustomKeys", "keys": {"X-Key": key, "X-Team": "travel"}},
        },
    ).json()
    assert replaced["id"] == created["id"]
    assert replaced["credentials"] == {"type": "CustomKeys"}
    assert replaced["target"].endswith("/v2") and replaced["metadata"] == {}

    deleted = http.delete(f"/connections/{name}")
    assert deleted.status_code == 200 and deleted.json() == {"name": name, "deleted": True}
    missing = http.get(f"/connections/{name}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert http.delete(f"/connections/{name}").status_code == 404


def test_default_connection_is_one_per_type(http: httpx.Client, unique: str) -> None:
    kind = f"Kind{unique}"
    body = {"type": kind, "target": "https://x.example", "credentials": {"type": "None"}}
    assert http.put(f"/connections/a-{unique}", json={**body, "isDefault": True}).is_success
    assert http.put(f"/connections/b-{unique}", json=body).is_success
    defaults = http.get(
        "/connections", params={"connectionType": kind, "defaultConnection": "true"}
    ).json()["value"]
    assert [c["name"] for c in defaults] == [f"a-{unique}"]
    assert http.put(f"/connections/b-{unique}", json={**body, "isDefault": True}).is_success
    listed = http.get("/connections", params={"connectionType": kind}).json()["value"]
    assert {c["name"]: c["isDefault"] for c in listed} == {
        f"a-{unique}": False,
        f"b-{unique}": True,
    }
    bad = http.get("/connections", params={"defaultConnection": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "defaultConnection"


def test_secret_never_appears_in_any_response(http: httpx.Client, unique: str) -> None:
    name = f"secretive-{unique}"
    key = f"sk-never-returned-{unique}-a1b2c3"
    token = f"tok-never-returned-{unique}-d4e5f6"
    header_value = f"hv-never-returned-{unique}-g7h8"
    call = Recorder(http)

    assert call("PUT", f"/connections/{name}", json=api_key_body(key)).status_code == 200
    assert call("GET", f"/connections/{name}").status_code == 200
    assert call("GET", "/connections").status_code == 200
    assert call("GET", "/connections", params={"connectionType": "ApiKey"}).status_code == 200
    with_credentials = call("POST", f"/connections/{name}/getConnectionWithCredentials")
    assert with_credentials.status_code == 403
    error = with_credentials.json()["error"]
    assert error["code"] == "secrets_not_returned"
    assert "never returns stored secrets" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert call("POST", "/connections/nope/getConnectionWithCredentials").status_code == 404

    # Errors about a body holding secrets never echo them.
    errors = [
        api_key_body(key, extra_field=key),
        api_key_body(key, name="other-name"),
        {**api_key_body(key), "credentials": {"type": "ApiKey", "key": key, "secret": key}},
        {**api_key_body(key), "credentials": {"type": "AAD", "key": key}},
        {**api_key_body(key), "credentials": {"type": "ApiKey", "key": key + "\r\nX-Evil: 1"}},
        {**api_key_body(key), "credentials": {"type": "BearerToken", "key": token}},
        {
            **api_key_body(key),
            "credentials": {"type": "CustomKeys", "keys": {"Host": header_value}},
        },
        {**api_key_body(key), "credentials": {"type": "CustomKeys", "keys": {"X": [header_value]}}},
        {**api_key_body(key), "credentials": key},
        {**api_key_body(key), "type": key},
        {**api_key_body(key), "target": ""},
        {**api_key_body(key), "metadata": {"header_name": "Content-Length"}},
    ]
    for body in errors:
        response = call("PUT", f"/connections/{name}", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"], response.text
    bad_json = call(
        "PUT",
        f"/connections/{name}",
        content=b'{"credentials": {"key": "' + key.encode() + b'"',
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400

    # The stored connection is untouched by the refused bodies.
    assert call("GET", f"/connections/{name}").json()["credentials"] == {"type": "ApiKey"}
    for kind, creds in [
        ("BearerToken", {"type": "BearerToken", "token": token}),
        ("CustomKeys", {"type": "CustomKeys", "keys": {"X-Api-Key": header_value}}),
    ]:
        body = {"type": "RemoteTool_Preview", "target": "https://mcp.example", "credentials": creds}
        reply = call("PUT", f"/connections/{name}-{kind}", json=body)
        assert reply.status_code == 200 and reply.json()["credentials"] == {"type": kind}
    call("GET", "/connections")
    call("DELETE", f"/connections/{name}")
    call.assert_never_saw(key, token, header_value)


def test_invalid_bodies_store_nothing(http: httpx.Client, unique: str) -> None:
    name = f"invalid-{unique}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"target": "https://x", "credentials": {"type": "None"}}, "type"),
        ({"type": "ApiKey", "credentials": {"type": "None"}}, "target"),
        ({"type": "ApiKey", "target": "https://x"}, "credentials"),
        (
            {"type": "ApiKey", "target": "https://x", "credentials": {"type": "ApiKey"}},
            "credentials.key",
        ),
        (
            {
                "type": "ApiKey",
                "target": "https://x",
                "credentials": {"type": "CustomKeys", "keys": {}},
            },
            "credentials.keys",
        ),
        ({"type": "Api Key", "target": "https://x", "credentials": {"type": "None"}}, "type"),
        (
            {
                "type": "ApiKey",
                "target": "https://x",
                "credentials": {"type": "None"},
                "metadata": {"a": 1},
            },
            "metadata.a",
        ),
        (
            {
                "type": "ApiKey",
                "target": "https://x",
                "credentials": {"type": "None"},
                "isDefault": "x",
            },
            "isDefault",
        ),
    ]
    for body, param in cases:
        response = http.put(f"/connections/{name}", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, (body, response.text)
    bad_name = http.put("/connections/-bad", json=api_key_body("sk-whatever-123"))
    assert bad_name.status_code == 400 and bad_name.json()["error"]["param"] == "name"
    assert http.get(f"/connections/{name}").status_code == 404
    assert name not in [c["name"] for c in http.get("/connections").json()["value"]]


def test_database_holds_only_ciphertext(
    http: httpx.Client,
    conn_server: LiveServer,
    database_url: str,
    connections_data_dir: Path,
    unique: str,
) -> None:
    name = f"at-rest-{unique}"
    key = f"sk-at-rest-{unique}-5f4e3d2c1b"
    assert http.put(f"/connections/{name}", json=api_key_body(key)).status_code == 200

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT * FROM connections WHERE name = :name"), {"name": name}
            ).one()
            dump = conn.execute(sa.text("SELECT * FROM connections")).all()
    finally:
        engine.dispose()
    for value in row:
        assert key not in str(value)
    assert key not in repr(dump)
    ciphertext = row._mapping["secret"]
    assert ciphertext.startswith("gAAAA")  # a Fernet token

    # The key lives in the data directory, mode 0600, and decrypts the row.
    key_file = connections_data_dir / "secret.key"
    assert key_file == conn_server.settings.resolved_secret_key_file
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    box = SecretBox(key_file=key_file, registry=SecretRegistry())
    assert box.decrypt(ciphertext) == {"key": key}
