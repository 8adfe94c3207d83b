"""The toolboxes REST on the wire: status codes, shapes, envelopes and refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from live_server import LiveServer

GITHUB = {"type": "mcp", "server_label": "github", "server_url": "https://example.com/mcp"}
NOTES = {"type": "mcp", "server_label": "notes", "command": ["python", "-m", "notes"]}
Q = {"api-version": "v1"}


@pytest.fixture
def http(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.project_url, params=Q, timeout=30)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["message"]
    return error


def test_lifecycle_on_the_wire(http: httpx.Client, unique: str) -> None:
    name = f"tb-{unique}"
    created = http.post(
        f"/toolboxes/{name}/versions",
        json={"tools": [GITHUB], "description": "d", "metadata": {"team": "support"}},
    )
    assert created.status_code == 200, created.text
    v1 = created.json()
    assert v1["id"] == f"{name}:1" and v1["version"] == "1" and v1["name"] == name
    assert v1["tools"] == [GITHUB] and v1["metadata"] == {"team": "support"}
    assert isinstance(v1["created_at"], int) and v1["description"] == "d"
    assert v1["mcp_endpoint"] == f"/api/projects/default/toolboxes/{name}/mcp?version=1"

    v2 = http.post(f"/toolboxes/{name}/versions", json={"tools": [GITHUB, NOTES]}).json()
    assert v2["version"] == "2" and v2["metadata"] == {} and v2["description"] is None

    toolbox = http.get(f"/toolboxes/{name}").json()
    assert toolbox["id"] == toolbox["name"] == name
    assert toolbox["default_version"] == "1" and toolbox["versions"]["latest"]["version"] == "2"
    assert isinstance(toolbox["updated_at"], int)
    assert toolbox["mcp_endpoint"] == f"/api/projects/default/toolboxes/{name}/mcp"

    patched = http.patch(f"/toolboxes/{name}", json={"default_version": "2"})
    assert patched.status_code == 200 and patched.json()["default_version"] == "2"
    assert (
        http.patch(f"/toolboxes/{name}", json={"default_version": 1}).json()["default_version"]
        == "1"
    )

    versions = http.get(f"/toolboxes/{name}/versions").json()
    assert [v["version"] for v in versions["data"]] == ["2", "1"]
    assert versions["last_id"] is None and versions["has_more"] is False
    assert http.get(f"/toolboxes/{name}/versions/2").json()["tools"] == [GITHUB, NOTES]

    deleted = http.delete(f"/toolboxes/{name}/versions/2")
    assert deleted.status_code == 204 and deleted.content == b""
    error = error_of(http.get(f"/toolboxes/{name}/versions/2"), 404)
    assert error["code"] == "not_found"
    gone = http.delete(f"/toolboxes/{name}")
    assert gone.status_code == 204 and gone.content == b""
    error_of(http.get(f"/toolboxes/{name}"), 404)
    error_of(http.delete(f"/toolboxes/{name}"), 404)


def test_list_envelope_pages_with_last_id(http: httpx.Client, unique: str) -> None:
    names = [f"env-{unique}-{i}" for i in range(3)]
    for name in names:
        assert http.post(f"/toolboxes/{name}/versions", json={"tools": [GITHUB]}).is_success
    first = http.get("/toolboxes", params={**Q, "limit": 2, "order": "asc"}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert first["last_id"] == first["data"][-1]["id"]
    seen = [t["name"] for t in first["data"]]
    after = first["last_id"]
    while after:
        page = http.get("/toolboxes", params={**Q, "limit": 2, "order": "asc", "after": after})
        body = page.json()
        seen += [t["name"] for t in body["data"]]
        after = body["last_id"]
    assert [n for n in seen if n.startswith(f"env-{unique}")] == names
    versions = http.get(f"/toolboxes/{names[0]}/versions", params={**Q, "after": "x:1"}).json()
    assert versions == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "tools", "tools is required"),
        ({"tools": "mcp"}, "tools", "must be a list"),
        ({"tools": []}, "tools", "at least one tool"),
        ({"tools": [GITHUB, {"type": "function", "name": "f"}]}, "tools[1].type", "'function'"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "cannot be in a toolbox"),
        ({"tools": [GITHUB, GITHUB]}, "tools[1]", "unique"),
        (
            {"tools": [{**GITHUB, "command": ["srv"]}]},
            "tools[0]",
            "not both",
        ),
        (
            {
                "tools": [
                    {"type": "openapi", "openapi": {"name": "w", "auth": {"type": "anonymous"}}}
                ]
            },
            "tools[0].openapi.spec",
            "",
        ),
        ({"tools": [GITHUB], "metadata": {"k": 1}}, None, "metadata"),
        ({"tools": [GITHUB], "description": "x" * 513}, None, "description"),
        ({"tools": [GITHUB], "skills": [{"type": "skill_reference"}]}, "skills", "skills"),
        ({"tools": [GITHUB], "policies": {"rai_config": {}}}, "policies", "policies"),
    ],
)
def test_bad_versions_are_refused_and_nothing_is_stored(
    http: httpx.Client, unique: str, body: dict[str, Any], param: str | None, words: str
) -> None:
    name = f"bad-{unique}"
    error = error_of(http.post(f"/toolboxes/{name}/versions", json=body), 400)
    assert words in error["message"]
    if param is not None:
        assert error["param"] == param
    error_of(http.get(f"/toolboxes/{name}"), 404)


def test_other_refusals(http: httpx.Client, unique: str) -> None:
    error = error_of(http.post("/toolboxes/bad%20name/versions", json={"tools": [GITHUB]}), 400)
    assert error["code"] == "invalid_name"
    json_type = {"content-type": "application/json"}
    error_of(
        http.post(f"/toolboxes/x-{unique}/versions", content=b"{not json", headers=json_type), 400
    )
    error_of(http.get(f"/toolboxes/nope-{unique}/versions"), 404)
    error_of(http.patch(f"/toolboxes/nope-{unique}", json={"default_version": "1"}), 404)
    wrong = httpx.get(f"{http.base_url}".replace("/default", "/elsewhere") + "/toolboxes")
    assert wrong.status_code == 404

    name = f"tb-{unique}"
    http.post(f"/toolboxes/{name}/versions", json={"tools": [GITHUB]})
    http.post(f"/toolboxes/{name}/versions", json={"tools": [NOTES]})
    assert "required" in error_of(http.patch(f"/toolboxes/{name}", json={}), 400)["message"]
    error = error_of(http.patch(f"/toolboxes/{name}", json={"default_version": "two"}), 400)
    assert error["param"] == "default_version"
    error = error_of(http.patch(f"/toolboxes/{name}", json={"default_version": "7"}), 404)
    assert "version 7" in error["message"]
    error_of(http.get(f"/toolboxes/{name}/versions/1.5"), 400)
    error_of(http.delete(f"/toolboxes/{name}/versions/latest"), 400)  # deletes take a number
    assert http.get(f"/toolboxes/{name}/versions/latest").json()["version"] == "2"  # a label

    refused = http.delete(f"/toolboxes/{name}/versions/1")
    error = error_of(refused, 400)
    assert error["code"] == "default_version" and error["param"] == "version"
    assert refused.headers.get("x-should-retry") == "false"
    assert http.get(f"/toolboxes/{name}").json()["default_version"] == "1"
    assert http.get(f"/toolboxes/{name}/versions/1").status_code == 200


def test_the_openapi_document_lists_the_toolbox_routes(server: LiveServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    base = "/api/projects/{project}/toolboxes"
    assert set(paths[base]) == {"get"}
    assert set(paths[base + "/{name}"]) == {"get", "patch", "delete"}
    assert set(paths[base + "/{name}/versions"]) == {"get", "post"}
    assert set(paths[base + "/{name}/versions/{version}"]) == {"get", "delete"}
