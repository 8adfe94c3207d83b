"""``GET /v1/models``: what OpenAI-style clients discover, with the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from live_server import LiveServer, make_settings, start_server


def create_agent(server: LiveServer, name: str, model: str = "echo") -> None:
    r = httpx.post(
        f"{server.project_url}/agents/{name}/versions",
        json={"definition": {"kind": "prompt", "model": model, "instructions": "Hi."}},
    )
    assert r.status_code == 200, r.text


def test_list_holds_every_deployment_and_agent(server: LiveServer, unique: str) -> None:
    agent = f"lister-{unique}"
    create_agent(server, agent)
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    models = {m.id: m for m in sdk.models.list()}
    deployments = {d.name for d in server.settings.deployments}
    assert deployments <= set(models)
    assert models["echo"].owned_by == "cupola"  # the scripted provider's publisher
    assert models["local-small"].owned_by == "HuggingFaceTB"
    assert models["unreachable"].owned_by == "OpenAI"
    assert models[agent].owned_by == "cupola-agent"
    assert all(m.object == "model" and m.created > 0 for m in models.values())
    raw = httpx.get(f"{server.project_url}/openai/v1/models").json()
    assert raw["object"] == "list"
    assert {m["id"] for m in raw["data"]} == set(models)
    assert set(raw["data"][0]) == {"id", "object", "created", "owned_by"}


def test_every_listed_model_can_be_used(server: LiveServer, unique: str) -> None:
    agent = f"usable-{unique}"
    create_agent(server, agent)
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    for model in ("echo", agent):
        assert sdk.models.retrieve(model).id == model
        reply = sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "ping"}]
        )
        assert reply.choices[0].message.content is not None
        assert reply.choices[0].message.content.endswith("user: ping")


def test_retrieve(server: LiveServer, unique: str) -> None:
    agent = f"fetched-{unique}"
    create_agent(server, agent)
    sdk = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    echo = sdk.models.retrieve("echo")
    assert (echo.id, echo.object, echo.owned_by) == ("echo", "model", "cupola")
    found = sdk.models.retrieve(agent)
    assert found.owned_by == "cupola-agent"
    assert sdk.models.retrieve(f"{agent}:1").id == f"{agent}:1"
    for missing in ("no-such-model", f"{agent}:7", f"{agent}:x"):
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.models.retrieve(missing)
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "model_not_found"


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[LiveServer]:
    live = start_server(
        make_settings(database_url, auth={"required": "always", "key_cache_seconds": 0})
    )
    yield live
    live.stop()


def test_an_api_key_lists_its_project(guarded: LiveServer, unique: str) -> None:
    _key, secret = guarded.services.store.create_key_sync(f"models-{unique}")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{guarded.url}/v1", api_key="cpl-wrong", max_retries=0
        ).models.list()
    sdk = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=secret, max_retries=0)
    ids = {m.id for m in sdk.models.list()}
    assert {d.name for d in guarded.settings.deployments} <= ids
    assert sdk.models.retrieve("weather-bot").id == "weather-bot"
    r = httpx.get(f"{guarded.project_url}/openai/v1/models", headers={"api-key": secret})
    assert r.status_code == 200 and {m["id"] for m in r.json()["data"]} == ids
