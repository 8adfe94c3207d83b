"""ConnectionStore and ConnectionSecrets (the runtime's SecretResolver) on a store of their
own: headers per credential type, lookups by name or id, and the wrong-key error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cupola.exceptions import ConfigError, NotFound, UserError
from cupola.secrets import KEY_MISMATCH, REGISTRY, SecretBox, SecretKeyError
from cupola.store import SqlStore
from cupola.store.connections import ConnectionSecrets


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(database_url)
    store.use_secret_box(SecretBox(key_file=tmp_path / "secret.key"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_headers_for_each_credential_type(store: SqlStore, unique: str) -> None:
    project = f"p-{unique}"
    save = store.create_or_replace_connection
    await save(
        project,
        "bearer-api-key",
        type="ApiKey",
        target="https://a.example",
        credential_type="ApiKey",
        secret={"key": f"sk-a-{unique}"},
    )
    await save(
        project,
        "header-api-key",
        type="ApiKey",
        target="https://b.example",
        credential_type="ApiKey",
        secret={"key": f"sk-b-{unique}"},
        metadata={"header_name": "X-Api-Key"},
    )
    await save(
        project,
        "token",
        type="RemoteTool_Preview",
        target="https://mcp.example",
        credential_type="BearerToken",
        secret={"token": f"tok-{unique}"},
    )
    await save(
        project,
        "custom",
        type="CustomKeys",
        target="https://c.example",
        credential_type="CustomKeys",
        secret={"keys": {"X-Key": f"ck-{unique}", "X-Org": "travel"}},
    )
    none, created = await save(
        project, "open", type="OpenAPI", target="https://d.example", credential_type="None"
    )
    assert created

    secrets = ConnectionSecrets(store)
    assert await secrets.headers_for(project, "bearer-api-key") == {
        "Authorization": f"Bearer sk-a-{unique}"
    }
    assert await secrets.headers_for(project, "header-api-key") == {"X-Api-Key": f"sk-b-{unique}"}
    assert await secrets.headers_for(project, "token") == {"Authorization": f"Bearer tok-{unique}"}
    assert await secrets.headers_for(project, "custom") == {
        "X-Key": f"ck-{unique}",
        "X-Org": "travel",
    }
    assert await secrets.headers_for(project, "open") == {}
    # By id, and by a Foundry-style resource id ending in /connections/<name>.
    assert await secrets.headers_for(project, none.id) == {}
    foundry_id = f"/subscriptions/s/resourceGroups/g/projects/{project}/connections/token"
    assert await secrets.headers_for(project, foundry_id) == {
        "Authorization": f"Bearer tok-{unique}"
    }
    # Every value handed out is known to the log redaction.
    assert f"ck-{unique}" in REGISTRY and f"tok-{unique}" in REGISTRY

    with pytest.raises(NotFound):
        await secrets.headers_for(project, "no-such-connection")
    with pytest.raises(NotFound):
        await secrets.headers_for(f"other-{unique}", "token")  # projects are separate


async def test_records_never_carry_the_secret(store: SqlStore, unique: str) -> None:
    project = f"p-{unique}"
    saved, _ = await store.create_or_replace_connection(
        project,
        "c1",
        type="ApiKey",
        target="https://a.example",
        credential_type="ApiKey",
        secret={"key": f"sk-record-{unique}"},
    )
    for record in [
        saved,
        await store.get_connection(project, "c1"),
        *await store.list_connections(project),
        await store.delete_connection(project, "c1"),
    ]:
        assert f"sk-record-{unique}" not in repr(record)
    assert await store.list_connections(project) == []


async def test_store_validates_the_secret_shape(store: SqlStore, unique: str) -> None:
    with pytest.raises(UserError):
        await store.create_or_replace_connection(
            f"p-{unique}",
            "c",
            type="ApiKey",
            target="https://a.example",
            credential_type="ApiKey",
            secret={"token": "sk-wrong-field"},
        )
    with pytest.raises(UserError):
        await store.create_or_replace_connection(
            f"p-{unique}",
            "c",
            type="ApiKey",
            target="https://a.example",
            credential_type="None",
            secret={"key": "sk-but-no-credential"},
        )
    assert await store.list_connections(f"p-{unique}") == []


async def test_wrong_key_is_a_clear_error(
    store: SqlStore, database_url: str, tmp_path: Path, unique: str
) -> None:
    project = f"p-{unique}"
    await store.create_or_replace_connection(
        project,
        "locked",
        type="ApiKey",
        target="https://a.example",
        credential_type="ApiKey",
        secret={"key": f"sk-locked-{unique}"},
    )
    other = SqlStore(database_url)
    other.use_secret_box(SecretBox(SecretBox.generate_key()))
    try:
        # Reading the record needs no key; using the secret does.
        assert (await other.get_connection(project, "locked")).credential_type == "ApiKey"
        with pytest.raises(SecretKeyError) as info:
            await ConnectionSecrets(other).headers_for(project, "locked")
        assert info.value.message == KEY_MISMATCH
    finally:
        await other.close()


async def test_a_store_without_a_box_says_so(database_url: str, unique: str) -> None:
    bare = SqlStore(database_url)
    try:
        with pytest.raises(ConfigError, match="use_secret_box"):
            await bare.create_or_replace_connection(
                f"p-{unique}",
                "c",
                type="ApiKey",
                target="https://a.example",
                credential_type="ApiKey",
                secret={"key": "sk-no-box-here"},
            )
    finally:
        await bare.close()
