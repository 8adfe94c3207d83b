"""OpenAPI tools connect only to addresses the egress policy checked (issue 8): a listed
host name resolving to loopback is refused when loopback is off, the address is resolved
once and connected to as checked, and a live server refuses it the same way."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import openai
import openapi_fake_api
import orjson
import pytest
from openapi_fake_api import FakeApi, weather_spec

from cupola.models.base import ToolCall
from cupola.settings import ToolSettings
from cupola.tools.base import ToolContext
from cupola.tools.egress import EgressDenied, EgressPolicy
from cupola.tools.openapi import OpenApiToolset
from live_server import LiveServer, make_settings, start_server

fake_api = openapi_fake_api.fake_api  # the shared fixture, session-scoped

CTX = ToolContext(project="default", response_id="resp_1", conversation_id=None, data_dir=Path("."))
NAME = "api.tools.example"
"""A listed name that exists in no DNS: only the policy's resolver knows it."""


class Dns:
    """Answers ``NAME`` with ``answers`` in turn (the last one repeats) and counts questions."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        assert host == NAME
        self.asked += 1
        return self.answers[min(self.asked, len(self.answers)) - 1]


def toolset(api: FakeApi, dns: Dns, **settings: Any) -> OpenApiToolset:
    base = api.base_url.replace("127.0.0.1", NAME)
    entry = {
        "type": "openapi",
        "openapi": {"name": "weather", "spec": weather_spec(base), "auth": {"type": "anonymous"}},
    }
    tool_settings = ToolSettings(allowed_hosts=[NAME], **settings)
    return OpenApiToolset(
        entry, EgressPolicy(tool_settings, resolver=dns), None, "default", tool_settings
    )


async def call(tools: OpenApiToolset) -> dict[str, Any]:
    args = orjson.dumps({"city": "Oslo"}).decode()
    return await tools.run(ToolCall("call_1", "weather_getWeather", args), CTX)


async def test_a_listed_name_resolving_to_loopback_is_refused(fake_api: FakeApi) -> None:
    seen = len(fake_api.paths("/weather/Oslo"))
    tools = toolset(fake_api, Dns(["127.0.0.1"]), allow_loopback=False)
    try:
        item = await call(tools)
    finally:
        await tools.aclose()
    assert item["status"] == "failed"
    assert f"{NAME} resolves to the loopback address 127.0.0.1" in item["error"]
    assert "allow_loopback is off" in item["error"]
    assert len(fake_api.paths("/weather/Oslo")) == seen  # nothing reached the API


async def test_the_checked_address_is_the_one_connected_to(fake_api: FakeApi) -> None:
    """The first answer is checked and used; a second, rebound answer (here the unspecified
    address, refused with loopback off) is never asked for on the same connection."""
    dns = Dns(["127.0.0.1"], ["0.0.0.0"])
    tools = toolset(fake_api, dns, allow_loopback=True)
    try:
        item = await call(tools)
        assert item["status"] == "completed", item["error"]
        assert dns.asked == 1
        again = await call(tools)  # the kept-alive connection: no new question
        assert again["status"] == "completed", again["error"]
        assert dns.asked == 1
    finally:
        await tools.aclose()
    assert (
        fake_api.paths("/weather/Oslo")[-1].headers["host"]
        == f"{NAME}:{fake_api.base_url.rsplit(':', 1)[1]}"
    )


async def test_each_address_of_a_name_is_checked() -> None:
    policy = EgressPolicy(ToolSettings(allow_loopback=False, allowed_hosts=[NAME]))
    policy.resolver = Dns(["93.184.215.14", "::ffff:127.0.0.1"])
    with pytest.raises(EgressDenied, match="loopback address 127.0.0.1"):
        await policy.resolve(NAME, 443)
    policy.resolver = Dns(["169.254.169.254"])
    with pytest.raises(EgressDenied, match="link-local"):
        await policy.resolve(NAME, 80)
    policy.resolver = Dns(["0.0.0.0"])
    with pytest.raises(EgressDenied, match="loopback"):
        await policy.resolve(NAME, 80)
    listed = EgressPolicy(ToolSettings(allowed_hosts=[NAME, "169.254.169.254/32"]))
    listed.resolver = Dns(["169.254.169.254"])
    assert await listed.resolve(NAME, 80) == ["169.254.169.254"]
    public = EgressPolicy(ToolSettings(allow_loopback=False, allowed_hosts=[NAME]))
    public.resolver = Dns(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    assert len(await public.resolve(NAME, 443)) == 2


def test_a_trailing_dot_does_not_hide_localhost() -> None:
    policy = EgressPolicy(ToolSettings(allow_loopback=False, allowed_hosts=["localhost."]))
    with pytest.raises(EgressDenied, match="loopback"):
        policy.check("http://localhost.:8080/x")


def _loopback_name() -> str | None:
    """This machine's host name, when the system resolver maps it to loopback."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except OSError:
        return None
    if name in ("localhost", "") or not all(i[4][0].startswith("127.") for i in infos):
        return None
    return name


def test_a_live_server_refuses_a_listed_name_that_resolves_to_loopback(
    database_url: str, fake_api: FakeApi
) -> None:
    """As found: ``tools.allowed_hosts`` lists a name, loopback is off, the name resolves
    (through the system's resolver) to 127.0.0.1. The call is refused and the API on
    loopback sees nothing."""
    name = _loopback_name()
    if name is None:
        pytest.skip("this machine's host name does not resolve to a loopback address")
    settings = make_settings(database_url, tools={"allow_loopback": False, "allowed_hosts": [name]})
    live: LiveServer = start_server(settings)
    try:
        seen = len(fake_api.paths("/me"))
        client = openai.OpenAI(base_url=live.openai_url, api_key="x", max_retries=0)
        base = fake_api.base_url.replace("127.0.0.1", name)
        tool = {
            "type": "openapi",
            "openapi": {
                "name": "accounts",
                "spec": weather_spec(base),
                "auth": {"type": "anonymous"},
            },
        }
        response = client.responses.create(model="api-bot", input="Who am I?", tools=[tool])
        call_item = response.output[0].model_dump()
        assert call_item["type"] == "openapi_call"
        assert "resolves to the loopback address" in call_item["error"]
        assert response.output_text == "The call failed."
        assert len(fake_api.paths("/me")) == seen
        assert httpx.get(f"{live.url}/healthz").status_code == 200
    finally:
        live.stop()
