"""API keys: required off loopback (or when configured), sent in any of the three headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from cupola.server.app import keys_required
from cupola.settings import Settings
from live_server import LiveServer, make_settings, start_server


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[LiveServer]:
    live = start_server(
        make_settings(database_url, auth={"required": "always", "key_cache_seconds": 0})
    )
    yield live
    live.stop()


def test_requests_without_a_valid_key_are_refused(guarded: LiveServer) -> None:
    url = f"{guarded.openai_url}/responses"
    for headers in ({}, {"Authorization": "Bearer cpl-wrong"}, {"api-key": "nope"}):
        r = httpx.post(url, json={"model": "echo", "input": "x"}, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200


def test_each_header_style_is_accepted_until_revoked(guarded: LiveServer, unique: str) -> None:
    store = guarded.services.store
    key, secret = store.create_key_sync(f"ci-{unique}")
    assert secret.startswith("cpl-") and key.prefix == secret[:10]
    listed = {k.id: k for k in store.list_keys_sync()}
    assert listed[key.id].revoked_at is None
    url = f"{guarded.project_url}/deployments"
    for headers in (
        {"Authorization": f"Bearer {secret}"},
        {"api-key": secret},
        {"x-api-key": secret},
    ):
        assert httpx.get(url, headers=headers).status_code == 200, headers
    sdk = openai.OpenAI(base_url=guarded.openai_url, api_key=secret, max_retries=0)
    assert sdk.responses.create(model="echo", input="authorised").output_text == "user: authorised"

    store.revoke_key_sync(key.id)
    assert httpx.get(url, headers={"api-key": secret}).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        sdk.responses.create(model="echo", input="again")


def test_keys_are_stored_only_as_digests(guarded: LiveServer, unique: str) -> None:
    import sqlalchemy as sa

    from cupola.store.tables import api_keys

    _key, secret = guarded.services.store.create_key_sync(f"digest-{unique}")
    with guarded.services.store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys)).all()
    assert all(secret not in str(tuple(row)) for row in rows)


@pytest.mark.parametrize(
    ("host", "mode", "required"),
    [
        ("127.0.0.1", "auto", False),
        ("::1", "auto", False),
        ("localhost", "auto", False),
        ("0.0.0.0", "auto", True),
        ("10.1.2.3", "auto", True),
        ("127.0.0.1", "always", True),
        ("0.0.0.0", "never", False),
    ],
)
def test_keys_are_required_off_loopback(host: str, mode: str, required: bool) -> None:
    settings = Settings.model_validate({"server": {"host": host}, "auth": {"required": mode}})
    assert keys_required(settings) is required
