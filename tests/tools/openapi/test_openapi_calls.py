"""OpenAPI tool calls against a real HTTP server on loopback (see openapi_fake_api.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openapi_fake_api
import orjson
import pytest
from openapi_fake_api import API_KEY, HUGE_BYTES, FakeApi, weather_spec

from cupola.exceptions import NotFound
from cupola.models.base import ToolCall
from cupola.settings import ToolSettings
from cupola.tools.base import SecretResolver, ToolContext
from cupola.tools.egress import EgressPolicy
from cupola.tools.openapi import OpenApiToolset, render_openapi_call

fake_api = openapi_fake_api.fake_api  # the shared fixture, session-scoped

CTX = ToolContext(project="default", response_id="resp_1", conversation_id=None, data_dir=Path("."))
CONNECTION = {"type": "project_connection", "security_scheme": {"project_connection_id": "wx"}}


class FakeSecrets:
    """A SecretResolver holding one connection's headers (the real store is ConnectionSecrets)."""

    def __init__(self, headers: dict[str, dict[str, str]]) -> None:
        self.headers = headers
        self.asked: list[tuple[str, str]] = []

    async def headers_for(self, project: str, connection: str) -> dict[str, str]:
        self.asked.append((project, connection))
        if connection not in self.headers:
            raise NotFound(f"connection {connection!r} not found")
        return dict(self.headers[connection])


MakeToolset = Callable[..., OpenApiToolset]


@pytest.fixture
async def make_toolset(fake_api: FakeApi) -> AsyncIterator[MakeToolset]:
    """Builds toolsets for the fake API (or another spec), closing them afterwards."""
    made: list[OpenApiToolset] = []

    def make(
        *,
        spec: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
        secrets: SecretResolver | None = None,
        client: httpx.AsyncClient | None = None,
        **settings: Any,
    ) -> OpenApiToolset:
        entry = {
            "type": "openapi",
            "openapi": {
                "name": "weather",
                "spec": spec or weather_spec(fake_api.base_url),
                "auth": auth or {"type": "anonymous"},
            },
        }
        tool_settings = ToolSettings(**{"allow_loopback": True, **settings})
        toolset = OpenApiToolset(
            entry, EgressPolicy(tool_settings), secrets, "default", tool_settings, client
        )
        made.append(toolset)
        return toolset

    yield make
    for toolset in made:
        await toolset.aclose()


async def call(toolset: OpenApiToolset, name: str, **args: Any) -> dict[str, Any]:
    return await toolset.run(ToolCall("call_1", name, orjson.dumps(args).decode()), CTX)


async def test_a_get_reaches_the_server_and_the_item_holds_the_answer(
    make_toolset: MakeToolset, fake_api: FakeApi
) -> None:
    toolset = make_toolset()
    assert toolset.label == "weather"
    assert [f.name for f in toolset.functions()][:2] == [
        "weather_getWeather",
        "weather_createBooking",
    ]
    item = await call(toolset, "weather_getWeather", city="São Paulo/Centro", units="imperial")
    assert item["id"].startswith("oa_")
    assert item["type"] == "openapi_call"
    assert item["status"] == "completed", item["error"]
    assert item["name"] == "weather_getWeather"
    assert item["operation_id"] == "getWeather"
    assert item["http_status"] == 200
    assert item["error"] is None
    assert orjson.loads(item["output"]) == {
        "city": "São Paulo/Centro",
        "units": "imperial",
        "temperature": 70,
    }
    sent = fake_api.paths("/weather/São Paulo/Centro")[-1]
    assert sent.raw_path == "/weather/S%C3%A3o%20Paulo%2FCentro"  # one path segment
    assert sent.query == [("units", "imperial")]
    assert "authorization" not in sent.headers
    rendered = render_openapi_call(item)
    assert rendered.call.name == "weather_getWeather"
    assert rendered.output == item["output"]


async def test_a_post_sends_the_json_body(make_toolset: MakeToolset, fake_api: FakeApi) -> None:
    item = await call(
        make_toolset(),
        "weather_createBooking",
        hotel="Grand Budapest",
        nights=2,
        guest={"name": "Zero"},
    )
    assert item["status"] == "completed", item["error"]
    assert item["http_status"] == 201
    sent = fake_api.paths("/bookings")[-1]
    assert sent.headers["content-type"] == "application/json"
    assert orjson.loads(sent.body) == {
        "hotel": "Grand Budapest",
        "nights": 2,
        "guest": {"name": "Zero"},
    }
    assert orjson.loads(item["output"])["status"] == "confirmed"


async def test_the_connection_key_is_sent_and_never_shown(
    make_toolset: MakeToolset, fake_api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = FakeSecrets({"wx": {"Authorization": f"Bearer {API_KEY}"}})
    toolset = make_toolset(auth=CONNECTION, secrets=secrets)
    item = await call(toolset, "weather_whoAmI")
    assert item["status"] == "completed", item["error"]
    assert orjson.loads(item["output"]) == {"user": "ada", "plan": "pro"}
    assert fake_api.paths("/me")[-1].headers["authorization"] == f"Bearer {API_KEY}"
    assert secrets.asked == [("default", "wx")]
    # An API that echoes the key back: the item shows it redacted.
    echoed = await call(toolset, "weather_echoHeaders")
    assert echoed["status"] == "completed"
    assert orjson.loads(echoed["output"])["authorization"] == "[redacted]"
    for it in (item, echoed):
        assert API_KEY not in orjson.dumps(it).decode()
        assert API_KEY not in render_openapi_call(it).output
    assert API_KEY not in caplog.text


async def test_the_connection_header_wins_over_a_header_parameter(
    make_toolset: MakeToolset, fake_api: FakeApi
) -> None:
    spec = weather_spec(fake_api.base_url)
    spec["paths"]["/headers"]["get"]["parameters"] = [
        {"name": "X-Api-Key", "in": "header", "schema": {"type": "string"}}
    ]
    secrets = FakeSecrets({"wx": {"x-api-key": API_KEY}})
    toolset = make_toolset(spec=spec, auth=CONNECTION, secrets=secrets)
    item = await call(toolset, "weather_echoHeaders", **{"X-Api-Key": "chosen-by-the-model"})
    assert item["status"] == "completed"
    sent = fake_api.paths("/headers")[-1]
    assert [v for k, v in sent.raw_headers if k == "x-api-key"] == [API_KEY]


async def test_without_the_key_the_server_refuses(
    make_toolset: MakeToolset, caplog: pytest.LogCaptureFixture
) -> None:
    item = await call(make_toolset(), "weather_whoAmI")
    assert item["status"] == "failed"
    assert item["http_status"] == 401
    assert item["output"] is None
    assert item["error"] == (
        'GET 127.0.0.1/me returned HTTP 401 Unauthorized: {"error":"a valid API key is required"}'
    )
    assert render_openapi_call(item).output.startswith("Error: GET 127.0.0.1/me returned HTTP 401")
    # A wrong key: the 401 error carries no secret either.
    wrong = FakeSecrets({"wx": {"Authorization": "Bearer sk-wrong-key-123"}})
    item = await call(make_toolset(auth=CONNECTION, secrets=wrong), "weather_whoAmI")
    assert item["http_status"] == 401
    assert "sk-wrong-key-123" not in orjson.dumps(item).decode() + caplog.text


async def test_a_missing_connection_fails_the_call(
    make_toolset: MakeToolset, fake_api: FakeApi
) -> None:
    before = len(fake_api.requests)
    item = await call(make_toolset(auth=CONNECTION, secrets=FakeSecrets({})), "weather_whoAmI")
    assert item["status"] == "failed"
    assert item["error"] == (
        "OpenAPI tool 'weather' could not use connection 'wx': connection 'wx' not found"
    )
    item = await call(make_toolset(auth=CONNECTION, secrets=None), "weather_whoAmI")
    assert "needs connection 'wx', but this server has no connection store" in item["error"]

    class BrokenSecrets:
        async def headers_for(self, project: str, connection: str) -> dict[str, str]:
            raise RuntimeError(f"cannot decrypt {API_KEY}")

    item = await call(make_toolset(auth=CONNECTION, secrets=BrokenSecrets()), "weather_whoAmI")
    assert item["error"] == (
        "OpenAPI tool 'weather' could not use connection 'wx': "
        "the secret store failed (RuntimeError)"
    )
    assert len(fake_api.requests) == before


async def test_a_host_not_allowed_is_refused_before_anything_is_sent(
    make_toolset: MakeToolset,
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="should not happen")

    secrets = FakeSecrets({"wx": {"Authorization": f"Bearer {API_KEY}"}})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        toolset = make_toolset(
            spec=weather_spec("https://api.example.com"),
            auth=CONNECTION,
            secrets=secrets,
            client=client,
        )
        item = await call(toolset, "weather_getWeather", city="Oslo")
    assert sent == []
    assert secrets.asked == []  # not even the credential was looked up
    assert item["status"] == "failed"
    assert item["http_status"] is None
    assert item["error"] == (
        "OpenAPI tool 'weather' may not call api.example.com: "
        "it is not in tools.allowed_hosts of cupola.yaml"
    )


async def test_allowed_hosts_let_the_call_through(make_toolset: MakeToolset) -> None:
    async def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"host": request.url.host})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
        toolset = make_toolset(
            spec=weather_spec("https://api.example.com"),
            client=client,
            allowed_hosts=["api.example.com"],
        )
        item = await call(toolset, "weather_getWeather", city="Oslo")
    assert item["status"] == "completed"
    assert orjson.loads(item["output"]) == {"host": "api.example.com"}


async def test_loopback_is_refused_when_turned_off(
    make_toolset: MakeToolset, fake_api: FakeApi
) -> None:
    before = len(fake_api.requests)
    item = await call(make_toolset(allow_loopback=False), "weather_getWeather", city="Oslo")
    assert item["status"] == "failed"
    assert "may not call loopback address 127.0.0.1" in item["error"]
    assert len(fake_api.requests) == before


async def test_a_slow_server_times_out(make_toolset: MakeToolset) -> None:
    started = time.monotonic()
    item = await call(make_toolset(timeout_seconds=0.5), "weather_slow")
    assert time.monotonic() - started < 3
    assert item["status"] == "failed"
    assert item["error"] == "GET 127.0.0.1/slow timed out after 0.5 s"
    assert item["http_status"] is None


async def test_a_huge_response_is_cut_at_the_cap(make_toolset: MakeToolset) -> None:
    item = await call(make_toolset(max_response_bytes=10_000), "weather_huge")
    assert item["status"] == "completed"
    output = item["output"]
    assert output.startswith("x" * 10_000 + "\n[truncated: the response was larger than 10000")
    assert len(output) < 10_100
    assert HUGE_BYTES > 10_000


async def test_a_server_error_fails_with_a_snippet(make_toolset: MakeToolset) -> None:
    item = await call(make_toolset(), "weather_broken")
    assert item["status"] == "failed"
    assert item["http_status"] == 500
    assert item["error"] == (
        "GET 127.0.0.1/broken returned HTTP 500 Internal Server Error: "
        "the weather database is on fire"
    )


async def test_redirects_are_not_followed(make_toolset: MakeToolset, fake_api: FakeApi) -> None:
    item = await call(make_toolset(), "weather_moved")
    assert item["status"] == "failed"
    assert item["http_status"] == 302
    assert "a redirect to 'https://evil.example.net/x'; not followed" in item["error"]


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("weather_nope", "{}", "OpenAPI tool 'weather' has no function 'weather_nope'"),
        ("weather_getWeather", "{not json", "the arguments are not valid JSON"),
        ("weather_getWeather", "[1]", "the arguments must be a JSON object"),
        (
            "weather_getWeather",
            '{"units": "kelvin"}',
            "the arguments do not match weather_getWeather's parameters: 'city' is a required",
        ),
        (
            "weather_createBooking",
            '{"hotel": "X", "nights": 0}',
            "0 is less than the minimum of 1 (at nights)",
        ),
    ],
)
async def test_bad_arguments_fail_without_a_request(
    make_toolset: MakeToolset, fake_api: FakeApi, name: str, arguments: str, expected: str
) -> None:
    before = len(fake_api.requests)
    item = await make_toolset().run(ToolCall("c", name, arguments), CTX)
    assert item["status"] == "failed"
    assert expected in item["error"]
    assert item["arguments"] == arguments
    assert len(fake_api.requests) == before


async def test_arguments_too_deep_to_send_fail_the_call_without_a_request(
    make_toolset: MakeToolset, fake_api: FakeApi
) -> None:
    """Valid JSON the parameters allow, nested deeper than a request body can be written:
    a tool error naming the cause (it was an unexpected crash before)."""
    deep = "[" * 300 + "]" * 300
    arguments = f'{{"hotel": "x", "nights": 1, "guest": {{"name": "Z", "extra": {deep}}}}}'
    before = len(fake_api.requests)
    item = await make_toolset().run(ToolCall("c", "weather_createBooking", arguments), CTX)
    assert item["status"] == "failed"
    assert "cannot be encoded for weather_createBooking" in item["error"], item["error"]
    assert len(fake_api.requests) == before


async def test_parameter_styles(make_toolset: MakeToolset, fake_api: FakeApi) -> None:
    spec = {
        "openapi": "3.0.3",
        "servers": [{"url": f"{fake_api.base_url}/echo"}],
        "paths": {
            "/items/{id}": {
                "post": {
                    "operationId": "update",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {"name": "tag", "in": "query", "schema": {"type": "array"}},
                        {
                            "name": "flat",
                            "in": "query",
                            "explode": False,
                            "schema": {"type": "array"},
                        },
                        {
                            "name": "f",
                            "in": "query",
                            "style": "deepObject",
                            "schema": {"type": "object"},
                        },
                        {"name": "dry", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                        {"name": "v", "in": "query", "schema": {"type": "string", "default": "2"}},
                    ],
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"note": {"type": "string"}},
                                }
                            }
                        }
                    },
                }
            }
        },
    }
    entry = {
        "type": "openapi",
        "openapi": {
            "name": "echo",
            "spec": spec,
            "auth": {"type": "anonymous"},
            "default_params": ["v"],
        },
    }
    settings = ToolSettings(allow_loopback=True)
    toolset = OpenApiToolset(entry, EgressPolicy(settings), None, "default", settings)
    try:
        item = await call(
            toolset,
            "echo_update",
            id="..",
            tag=["a", "b"],
            flat=[1, 2],
            f={"lo": 1},
            dry=True,
            **{"X-Trace": "t-1"},
            session="s 1",
            note="hi there",
        )
    finally:
        await toolset.aclose()
    assert item["status"] == "completed", item["error"]
    echoed = orjson.loads(item["output"])
    assert echoed["raw_path"] == "/echo/items/%2E%2E"
    assert echoed["query"] == [
        ["tag", "a"],
        ["tag", "b"],
        ["flat", "1,2"],
        ["f[lo]", "1"],
        ["dry", "true"],
        ["v", "2"],
    ]
    assert echoed["x_trace"] == "t-1"
    assert echoed["cookie"] == "session=s%201"
    assert echoed["content_type"] == "application/x-www-form-urlencoded"
    assert echoed["body"] == "note=hi+there"
