"""The console over HTTP: every page renders from the API, refusals are the API's, writes must
come from the console's own origin, and the sign-in cookie is the only way a key gets in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import httpx
import pytest

from cupola.console.diff import diff_definitions
from cupola.console.waterfall import waterfall
from cupola.domain import Role
from live_server import LiveServer, make_settings, start_server

PAGES = ["playground", "agents", "conversations", "deployments", "toolboxes"]


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[LiveServer]:
    live = start_server(
        make_settings(database_url, auth={"required": "always", "key_cache_seconds": 0})
    )
    yield live
    live.stop()


def test_every_page_renders_with_headers_that_keep_it_safe(server: LiveServer) -> None:
    for name in PAGES:
        r = httpx.get(f"{server.url}/console/{name}")
        assert r.status_code == 200, (name, r.text)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert 'aria-current="page"' in r.text
        # nothing is loaded from another site: no CDN, works offline
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), name
    r = httpx.get(f"{server.url}/console")
    assert r.status_code == 307 and r.headers["location"] == "/console/playground"


def test_static_files_ship_in_the_package_and_load_nothing_remote(server: LiveServer) -> None:
    static = resources.files("cupola.console") / "static"
    for name in ("console.css", "playground.js", "recent.js"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text and "@import" not in text
        r = httpx.get(f"{server.url}/console/static/{name}")
        assert r.status_code == 200 and r.text == text


def test_pages_show_the_apis_refusals(server: LiveServer, unique: str) -> None:
    r = httpx.get(f"{server.url}/console/agents/nobody-{unique}")
    assert r.status_code == 404 and f"nobody-{unique}" in r.text and 'role="alert"' in r.text
    r = httpx.get(f"{server.url}/console/responses/resp_{unique}")
    assert r.status_code == 404
    r = httpx.get(f"{server.url}/console/agents/a/diff?from=1&to=x")
    assert r.status_code == 400 and "two version numbers" in r.text
    r = httpx.get(f"{server.url}/console/conversations", params={"id": "nonsense"})
    assert r.status_code == 400 and "not a conversation or response id" in r.text


def test_a_rebound_host_is_refused_as_the_api_refuses_it(server: LiveServer) -> None:
    """DNS rebinding: a keyless loopback server answers only to loopback names, console too."""
    r = httpx.get(f"{server.url}/console/agents", headers={"host": "attacker.example"})
    assert r.status_code == 403 and "loopback" in r.text
    r = httpx.post(
        f"{server.url}/console/api/responses",
        json={"model": "echo", "input": "hi"},
        headers={"host": "attacker.example", "origin": "http://attacker.example"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"


def test_browsing_a_response_and_its_conversation(server: LiveServer, unique: str) -> None:
    conv = httpx.post(f"{server.openai_url}/conversations", json={}).json()
    made = httpx.post(
        f"{server.openai_url}/responses",
        json={"model": "echo", "input": f"hello {unique}", "conversation": conv["id"]},
    ).json()
    page = httpx.get(f"{server.url}/console/responses/{made['id']}")
    assert page.status_code == 200
    assert page.text.count(f"hello {unique}") == 2  # the input, and the echo in the output
    assert f'href="/console/conversations/{conv["id"]}"' in page.text
    page = httpx.get(f"{server.url}/console/conversations/{conv['id']}")
    assert page.status_code == 200 and page.text.count(f"hello {unique}") == 2
    found = httpx.get(f"{server.url}/console/conversations", params={"id": made["id"]})
    assert found.status_code == 303 and found.headers["location"].endswith(made["id"])


def test_the_playground_endpoint_takes_only_same_origin_json(server: LiveServer) -> None:
    url = f"{server.url}/console/api/responses"
    body = {"model": "echo", "input": "ping", "stream": True}
    r = httpx.post(url, json=body, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site"
    r = httpx.post(url, json=body, headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    r = httpx.post(url, content=b"input=ping", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(url, json=body, headers={"origin": server.url})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "event: response.completed" in r.text and '"delta":"ping"' in r.text
    r = httpx.post(url, json={"model": "nope", "input": "x"}, headers={"origin": server.url})
    assert r.status_code in (400, 404) and "nope" in r.json()["error"]["message"]


def test_keys_come_only_from_the_sign_in_cookie(guarded: LiveServer, unique: str) -> None:
    url = guarded.url
    r = httpx.get(f"{url}/console/agents")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Fagents"
    _key, reader = guarded.services.store.create_key_sync(f"r-{unique}", "default", Role.READER)
    _key, other = guarded.services.store.create_key_sync(f"o-{unique}", "other", Role.ADMIN)
    # an Authorization header does not sign a browser in, nor reach the playground endpoint
    bearer = {"authorization": f"Bearer {reader}"}
    assert httpx.get(f"{url}/console/agents", headers=bearer).status_code == 303
    r = httpx.post(f"{url}/console/api/responses", json={"input": "x"}, headers=bearer)
    assert r.status_code == 401
    # sign-in: from the console's own origin only, with a key of this project
    login = f"{url}/console/login"
    form = {"key": reader, "next": "/console/agents"}
    r = httpx.post(login, data=form, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "cupola_console_key" not in r.headers.get("set-cookie", "")
    r = httpx.post(login, data={"key": other, "next": "/console/agents"}, headers={"origin": url})
    assert r.status_code == 401 and "belongs to project" in r.text
    r = httpx.post(login, data={"key": reader, "next": "//evil.example/x"}, headers={"origin": url})
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    with httpx.Client(base_url=url, cookies=r.cookies) as browser:
        assert browser.get("/console/agents").status_code == 200
        assert browser.get("/console/deployments").status_code == 200
        # a reader reads but may not run: the API's own role check answers
        r = browser.post(
            "/console/api/responses", json={"model": "echo", "input": "x"}, headers={"origin": url}
        )
        assert r.status_code == 403 and "needs the user role" in r.json()["error"]["message"]
        r = browser.post("/console/logout", headers={"origin": url})
        assert r.status_code == 303 and 'cupola_console_key=""' in r.headers["set-cookie"]


def test_a_revoked_key_signs_the_browser_out(guarded: LiveServer, unique: str) -> None:
    key, secret = guarded.services.store.create_key_sync(f"gone-{unique}", "default", Role.READER)
    with httpx.Client(base_url=guarded.url) as browser:
        r = browser.post("/console/login", data={"key": secret}, headers={"origin": guarded.url})
        assert r.status_code == 303
        assert browser.get("/console/agents").status_code == 200
        guarded.services.store.revoke_key_sync(key.id)
        r = browser.get("/console/agents")
        assert r.status_code == 303 and r.headers["location"].endswith("why=expired")


def test_the_diff_compares_every_definition_field() -> None:
    before = {"kind": "prompt", "model": "a", "instructions": "one\ntwo", "tools": []}
    after = {"kind": "prompt", "model": "b", "instructions": "one\nthree", "top_p": 0.5}
    diff = diff_definitions(before, after)
    assert [(line.kind, line.text) for line in diff.instructions] == [
        ("same", "one"),
        ("removed", "two"),
        ("added", "three"),
    ]
    changed = {f.name: (f.before, f.after) for f in diff.fields if f.changed}
    assert changed == {"model": ("a", "b"), "top_p": ("", "0.5")}
    assert [f.name for f in diff.fields][:2] == ["kind", "model"]
    assert not diff.tools_changed and not diff.identical
    assert diff_definitions(before, dict(before)).identical


def test_agent_page_shows_labels_and_the_default_version(server: LiveServer, unique: str) -> None:
    name = f"labelled-{unique}"
    base = f"{server.project_url}/agents/{name}"
    for text in ("first", "second"):
        made = httpx.post(
            f"{base}/versions",
            json={"definition": {"kind": "prompt", "model": "echo", "instructions": text}},
        )
        assert made.status_code == 200, made.text
    assert httpx.put(f"{base}/labels/prod", json={"version": 1}).status_code == 200
    page = httpx.get(f"{server.url}/console/agents/{name}").text
    rows = re.findall(r"<tr>\s*<td>(\d)(.*?)</tr>", page, re.S)
    by_version = {number: row for number, row in rows}
    assert '<span class="tag">prod</span>' in by_version["1"]
    assert "default" in by_version["2"] and "prod" not in by_version["2"]
    assert "get <strong>version 2</strong>" in page
    listed = httpx.get(f"{server.url}/console/agents").text
    assert f'href="/console/agents/{name}"' in listed


def test_toolbox_pages_show_versions_and_the_endpoint(server: LiveServer, unique: str) -> None:
    name = f"box-{unique}"
    tool = {"type": "mcp", "server_label": "remote", "server_url": "https://mcp.example/mcp"}
    made = httpx.post(
        f"{server.project_url}/toolboxes/{name}/versions",
        json={"description": "Remote tools", "tools": [tool]},
    )
    assert made.status_code == 200, made.text
    listed = httpx.get(f"{server.url}/console/toolboxes").text
    assert f'href="/console/toolboxes/{name}"' in listed and "Remote tools" in listed
    page = httpx.get(f"{server.url}/console/toolboxes/{name}")
    assert page.status_code == 200
    assert f"/api/projects/default/toolboxes/{name}/mcp" in page.text
    assert "https://mcp.example/mcp" in page.text and "default</span>" in page.text


def test_odd_ids_and_paths_are_4xx_never_5xx(server: LiveServer) -> None:
    for path in (
        "/console/agents/%2F..%2F",
        "/console/agents/%3Cscript%3E",
        "/console/responses/resp_%00",
        "/console/conversations/conv_missing",
        "/console/agents/a/diff",
        "/console/toolboxes/%20",
        "/console/static/../app.py",
        "/console/nothing",
    ):
        r = httpx.get(f"{server.url}{path}")
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert "<script>" not in r.text
    r = httpx.get(f"{server.url}/console/conversations", params={"id": "resp/../../x"})
    assert r.headers["location"] == "/console/responses/resp%2F..%2F..%2Fx"
    url = f"{server.url}/console/api/responses"
    for body in (b"not json", b"[]", b'{"input": 5}'):
        r = httpx.post(
            url, content=body, headers={"content-type": "application/json", "origin": server.url}
        )
        assert r.status_code == 400 and "message" in r.json()["error"]


def test_the_waterfall_puts_children_under_parents_by_start_time() -> None:
    def span(sid: str, parent: str | None, start: int, end: int) -> dict[str, object]:
        return {
            "span_id": sid,
            "parent_span_id": parent,
            "start_time_unix_nano": start * 1_000_000,
            "end_time_unix_nano": end * 1_000_000,
        }

    spans = [
        span("tool", "run", 40, 60),
        span("chat2", "run", 60, 100),
        span("run", "remote-parent", 0, 100),  # a caller's traceparent: not in the trace
        span("chat1", "run", 5, 40),
    ]
    rows, total = waterfall(spans)
    assert total == 100.0
    assert [(r.span["span_id"], r.depth, r.x, r.width) for r in rows] == [
        ("run", 0, 0, 1000),
        ("chat1", 1, 50, 350),
        ("tool", 1, 400, 200),
        ("chat2", 1, 600, 400),
    ]
    assert waterfall([]) == ([], 0.0)
