"""OpenAPI specs to functions: names, parameter schemas, and clear errors for bad specs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openapi_fake_api import weather_spec

from cupola.exceptions import UserError
from cupola.tools.openapi import normalize_openapi_tool
from cupola.tools.openapi_spec import parse_openapi_spec

BASE = "https://api.example.com/v1"


def tool(spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"name": "weather", "spec": spec, "auth": {"type": "anonymous"}, **extra}
    return {"type": "openapi", "openapi": body}


def functions(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in entry["openapi"]["functions"]}


def rejected(raw: dict[str, Any], **kwargs: Any) -> UserError:
    with pytest.raises(UserError) as info:
        normalize_openapi_tool(raw, "tools[0]", **kwargs)
    assert info.value.param is not None and info.value.param.startswith("tools[0]")
    return info.value


def minimal(**op: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "servers": [{"url": BASE}],
        "paths": {"/ping": {"get": {"operationId": "ping", **op}}},
    }


def test_each_operation_becomes_a_function() -> None:
    entry = normalize_openapi_tool(tool(weather_spec(BASE), description="Weather"), "tools[0]")
    fns = functions(entry)
    assert list(fns) == [
        "weather_getWeather",
        "weather_createBooking",
        "weather_whoAmI",
        "weather_echoHeaders",
        "weather_slow",
        "weather_huge",
        "weather_broken",
        "weather_moved",
    ]
    get = fns["weather_getWeather"]
    assert get["description"] == "Current weather for a city"
    assert get["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city name"},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
        },
        "required": ["city"],
    }
    # A JSON object body: its properties are arguments (readOnly ones left out), refs resolved.
    book = fns["weather_createBooking"]
    assert book["description"] == "Book a hotel room"
    assert book["parameters"] == {
        "type": "object",
        "properties": {
            "hotel": {"type": "string"},
            "nights": {"type": "integer", "minimum": 1},
            "guest": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
            },
        },
        "required": ["hotel", "nights"],
    }
    assert fns["weather_slow"]["description"] == "GET /slow"
    # The echo is Foundry's shape.
    assert entry["type"] == "openapi"
    assert entry["openapi"]["name"] == "weather"
    assert entry["openapi"]["description"] == "Weather"
    assert entry["openapi"]["auth"] == {"type": "anonymous"}
    assert entry["openapi"]["spec"] == weather_spec(BASE)


def test_the_echo_is_stable_and_ignores_client_functions() -> None:
    first = normalize_openapi_tool(tool(weather_spec(BASE)), "tools[0]")
    again = copy.deepcopy(first)
    again["openapi"]["functions"] = [{"name": "made_up", "parameters": {}}]
    assert normalize_openapi_tool(again, "tools[0]") == first


def test_the_sdk_model_round_trips() -> None:
    from azure.ai.projects.models import (
        OpenApiFunctionDefinition,
        OpenApiProjectConnectionAuthDetails,
        OpenApiProjectConnectionSecurityScheme,
        OpenApiTool,
    )

    sdk_tool = OpenApiTool(
        openapi=OpenApiFunctionDefinition(
            name="weather",
            description="Weather",
            spec=weather_spec(BASE),
            auth=OpenApiProjectConnectionAuthDetails(
                security_scheme=OpenApiProjectConnectionSecurityScheme(
                    project_connection_id="weather-key"
                )
            ),
        )
    )
    entry = normalize_openapi_tool(sdk_tool.as_dict(), "tools[0]")
    assert entry["openapi"]["auth"] == {
        "type": "project_connection",
        "security_scheme": {"project_connection_id": "weather-key"},
    }
    parsed = OpenApiTool(entry)
    assert parsed.openapi.functions is not None
    assert parsed.openapi.functions[0].name == "weather_getWeather"


def test_names_are_sanitized_and_truncated() -> None:
    spec = minimal()
    spec["paths"]["/ping"]["get"]["operationId"] = "ping.v2 (beta)"
    spec["paths"]["/long"] = {"get": {"operationId": "x" * 80}}
    names = list(functions(normalize_openapi_tool(tool(spec), "tools[0]")))
    assert names == ["weather_ping_v2__beta_", "weather_" + "x" * 56]
    assert all(len(n) <= 64 for n in names)


def test_openapi_30_schemas_become_json_schema() -> None:
    spec = minimal(
        parameters=[
            {
                "name": "limit",
                "in": "query",
                "schema": {
                    "type": "integer",
                    "nullable": True,
                    "maximum": 50,
                    "exclusiveMaximum": True,
                    "example": 10,
                    "x-internal": "yes",
                },
            },
            {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
            {"name": "Authorization", "in": "header", "schema": {"type": "string"}},
        ]
    )
    params = functions(normalize_openapi_tool(tool(spec), "tools[0]"))["weather_ping"]["parameters"]
    assert params["properties"] == {
        "limit": {"type": ["integer", "null"], "exclusiveMaximum": 50, "examples": [10]},
        "X-Trace": {"type": "string"},
    }
    assert "required" not in params


def test_recursive_schemas_are_cut() -> None:
    spec = minimal()
    spec["paths"]["/ping"]["get"]["requestBody"] = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}
    }
    spec["components"] = {
        "schemas": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                },
            }
        }
    }
    params = functions(normalize_openapi_tool(tool(spec), "tools[0]"))["weather_ping"]["parameters"]
    children = params["properties"]["children"]
    assert children["items"] == {
        "type": "object",
        "description": "(recursive: #/components/schemas/Node)",
    }


def test_a_non_object_body_is_one_argument() -> None:
    spec = minimal()
    spec["paths"]["/ping"]["get"]["parameters"] = [
        {"name": "hotel", "in": "query", "schema": {"type": "string"}}
    ]
    spec["paths"]["/ping"]["get"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"hotel": {"type": "string"}}}
            }
        },
    }
    params = functions(normalize_openapi_tool(tool(spec), "tools[0]"))["weather_ping"]["parameters"]
    # "hotel" is both a query parameter and a body property: the body stays whole.
    assert params["required"] == ["body"]
    assert set(params["properties"]) == {"hotel", "body"}


def test_relative_servers_need_a_base_url() -> None:
    spec = minimal()
    spec["servers"] = [{"url": "/api/v3"}]
    err = rejected(tool(spec))
    assert "tools[0].openapi.spec.servers[0].url" in err.message
    assert "relative" in err.message
    ops = parse_openapi_spec(
        spec, tool="t", where="spec", base_url="https://petstore.example.com/openapi.json"
    )
    assert ops[0].server == "https://petstore.example.com/api/v3"


def test_server_variables_take_their_defaults() -> None:
    spec = minimal()
    spec["servers"] = [
        {"url": "https://{region}.example.com/v1", "variables": {"region": {"default": "eu"}}}
    ]
    assert parse_openapi_spec(spec, tool="t", where="s")[0].server == "https://eu.example.com/v1"


def test_default_params_are_hidden_and_fixed() -> None:
    spec = minimal(
        parameters=[
            {"name": "api-version", "in": "query", "schema": {"type": "string", "default": "2"}},
            {"name": "q", "in": "query", "schema": {"type": "string"}},
        ]
    )
    entry = normalize_openapi_tool(tool(spec, default_params=["api-version"]), "tools[0]")
    assert entry["openapi"]["default_params"] == ["api-version"]
    assert list(functions(entry)["weather_ping"]["parameters"]["properties"]) == ["q"]
    err = rejected(tool(spec, default_params=["nope"]))
    assert "default_params names 'nope'" in err.message
    err = rejected(tool(spec, default_params=["q"]))
    assert "'q' is in default_params but its schema has no default" in err.message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["paths"].clear(), "tools[0].openapi.spec.paths: the spec has no operations"),
        (
            lambda s: s["paths"]["/ping"]["get"].pop("operationId"),
            "tools[0].openapi.spec.paths['/ping'].get: the operation has no operationId",
        ),
        (
            lambda s: s["paths"]["/ping"]["get"].update(
                parameters=[{"$ref": "#/components/parameters/Missing"}]
            ),
            "tools[0].openapi.spec.paths['/ping'].get.parameters[0]: "
            "$ref '#/components/parameters/Missing' does not resolve",
        ),
        (
            lambda s: s["paths"]["/ping"]["get"].update(
                parameters=[{"name": "q", "in": "query", "schema": {"$ref": "other.yaml#/Q"}}]
            ),
            "$ref 'other.yaml#/Q' points outside the document",
        ),
        (
            lambda s: s["paths"].update({"/pong/{id}": {"get": {"operationId": "pong"}}}),
            "paths['/pong/{id}'].get: path template {id} has no matching 'in: path' parameter",
        ),
        (
            lambda s: s["paths"].update({"/pong": {"get": {"operationId": "ping"}}}),
            "paths['/pong'].get: operationId 'ping' is also used by paths['/ping'].get",
        ),
        (lambda s: s.pop("servers"), "tools[0].openapi.spec.servers: the spec names no server"),
        (lambda s: s.update(openapi="2.0"), "must be '3.0.x' or '3.1.x'"),
        (
            lambda s: s["paths"]["/ping"]["get"].update(
                requestBody={"required": True, "content": {"application/xml": {}}}
            ),
            "the request body is application/xml; only JSON and form-encoded bodies",
        ),
        (
            lambda s: s["paths"]["/ping"]["get"].update(
                parameters=[{"name": "q", "in": "query", "schema": {"type": "nonsense"}}]
            ),
            "paths['/ping'].get: the parameters are not a valid JSON Schema",
        ),
    ],
)
def test_bad_specs_are_refused_naming_the_spot(mutate: Any, expected: str) -> None:
    spec = minimal()
    mutate(spec)
    assert expected in rejected(tool(spec)).message


def test_schema_bombs_are_refused() -> None:
    schemas: dict[str, Any] = {"S0": {"type": "string"}}
    for i in range(1, 30):
        ref = {"$ref": f"#/components/schemas/S{i - 1}"}
        schemas[f"S{i}"] = {"type": "object", "properties": {"a": ref, "b": ref}}
    spec = minimal()
    spec["components"] = {"schemas": schemas}
    spec["paths"]["/ping"]["get"]["parameters"] = [
        {"name": "q", "in": "query", "schema": {"$ref": "#/components/schemas/S29"}}
    ]
    assert "expand to more than" in rejected(tool(spec)).message


@pytest.mark.parametrize(
    ("openapi", "expected"),
    [
        (None, "tools[0].openapi is required"),
        ({"name": "bad name!", "spec": {}, "auth": {"type": "anonymous"}}, "openapi.name must"),
        ({"name": "w", "spec": minimal()}, "tools[0].openapi.auth is required"),
        (
            {"name": "w", "spec": minimal(), "auth": {"type": "project_connection"}},
            "security_scheme.project_connection_id must name a project connection",
        ),
        (
            {
                "name": "w",
                "spec": minimal(),
                "auth": {"type": "managed_identity", "security_scheme": {"audience": "x"}},
            },
            "'managed_identity' needs an Azure managed identity",
        ),
        ({"name": "w", "spec": "openapi: 3.0.0", "auth": {"type": "anonymous"}}, "an object"),
    ],
)
def test_bad_entries_are_refused(openapi: Any, expected: str) -> None:
    assert expected in rejected({"type": "openapi", "openapi": openapi}).message
