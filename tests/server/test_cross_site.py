"""Cross-site requests: browser origins refused unless configured (CORS off by default), JSON
endpoints take only application/json, a keyless server answers only to a loopback Host."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from cupola.settings import load_settings
from live_server import LiveServer, make_settings, start_server

APP = "https://app.example.com"


@pytest.fixture(scope="module")
def with_cors(database_url: str) -> Iterator[LiveServer]:
    live = start_server(make_settings(database_url, server={"cors_origins": [APP]}))
    yield live
    live.stop()


def test_a_browser_origin_is_refused_when_cors_is_off(server: LiveServer) -> None:
    url = f"{server.url}/v1/responses"
    for method in ("GET", "POST", "DELETE", "OPTIONS"):
        r = httpx.request(
            method,
            f"{url}/resp_x" if method != "POST" else url,
            headers={"Origin": "http://localhost:3000", "Content-Type": "application/json"},
            content=b'{"model": "echo", "input": "hi"}' if method == "POST" else None,
        )
        assert r.status_code == 403, (method, r.text)
        error = r.json()["error"]
        assert error["code"] == "origin_not_allowed" and error["type"] == "permission_error"
        assert "server.cors_origins" in error["message"]
        assert "access-control-allow-origin" not in r.headers
        assert r.headers["x-request-id"]
    preflight = httpx.options(url, headers={"Origin": APP, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    # Anthropic clients get their own error shape
    r = httpx.post(
        f"{server.url}/anthropic/v1/messages",
        json={"model": "echo", "max_tokens": 5, "messages": []},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    assert r.json() == {
        "type": "error",
        "error": {"type": "permission_error", "message": r.json()["error"]["message"]},
    }


def test_no_cors_headers_and_sdks_unaffected(server: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    raw = sdk.responses.with_raw_response.create(model="echo", input="plain")
    assert raw.parse().output_text == "user: plain"
    assert "access-control-allow-origin" not in raw.headers
    assert "vary" not in raw.headers


def test_fetch_metadata_marks_a_cross_site_request(server: LiveServer) -> None:
    """A no-cors request (an <img> or a form) has no Origin on GET but says it is cross-site."""
    url = f"{server.project_url}/deployments"
    assert httpx.get(url, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert httpx.get(url, headers={"Sec-Fetch-Site": "none"}).status_code == 200
    for site in ("cross-site", "same-site"):
        r = httpx.get(url, headers={"Sec-Fetch-Site": site})
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"


def test_a_keyless_server_answers_only_to_a_loopback_host(server: LiveServer) -> None:
    """DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1 sends its
    GETs same-origin (no Origin), with its own name as Host."""
    port = server.url.rsplit(":", 1)[1]
    url = f"{server.project_url}/deployments"
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}"):
        r = httpx.get(url, headers={"Host": host})
        assert r.status_code == 403, host
        assert r.json()["error"]["code"] == "host_not_allowed"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", "app.localhost"):
        assert httpx.get(url, headers={"Host": host}).status_code == 200, host


def test_json_endpoints_take_only_json(server: LiveServer) -> None:
    body = b'{"model": "echo", "input": "hi"}'
    url = f"{server.url}/v1/responses"
    for content_type in (
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        r = httpx.post(url, content=body, headers=headers)
        assert r.status_code == 415, (content_type, r.text)
        assert r.json()["error"]["code"] == "unsupported_media_type"
    for content_type in ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON"):
        r = httpx.post(url, content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, (content_type, r.text)
    # the same on every JSON endpoint, e.g. agents and conversations
    for path in ("/agents/x/versions", "/openai/v1/conversations"):
        r = httpx.post(
            server.project_url + path, content=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert r.status_code == 415, path
    # a body-less POST needs no type (cancel, or an empty conversation)
    assert httpx.post(f"{server.url}/v1/conversations").status_code == 200
    # file uploads stay multipart
    r = httpx.post(
        f"{server.url}/v1/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"x")}
    )
    assert r.status_code == 200, r.text


def test_an_allowed_origin_gets_cors(with_cors: LiveServer) -> None:
    url = f"{with_cors.url}/v1/responses"
    preflight = httpx.options(
        url,
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == (
        "authorization, content-type, x-stainless-os"
    )
    assert preflight.headers["vary"] == "Origin"
    assert int(preflight.headers["access-control-max-age"]) > 0

    r = httpx.post(url, json={"model": "echo", "input": "from the app"}, headers={"Origin": APP})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    assert r.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    assert r.headers["vary"] == "Origin"
    # errors carry CORS too, so the page can read them
    bad = httpx.post(url, json={"model": "nope", "input": "x"}, headers={"Origin": APP})
    assert bad.status_code in (400, 404) and bad.headers["access-control-allow-origin"] == APP

    other = httpx.post(url, json={"model": "echo", "input": "x"}, headers={"Origin": APP + ":8443"})
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers
    plain = httpx.get(f"{with_cors.project_url}/deployments")
    assert plain.status_code == 200 and plain.headers["vary"] == "Origin"
    # a text/plain body from the allowed origin is still not JSON
    r = httpx.post(url, content=b"{}", headers={"Origin": APP, "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_cors_origins_from_the_environment() -> None:
    env = {"CUPOLA_SERVER__CORS_ORIGINS": "https://a.example, http://localhost:5173,tauri://x"}
    settings = load_settings(env=env)
    assert settings.server.cors_origins == [
        "https://a.example",
        "http://localhost:5173",
        "tauri://x",
    ]
    assert load_settings(env={}).server.cors_origins == []
    from cupola.exceptions import ConfigError

    for bad in ("*", "https://a.example/path", "a.example"):
        with pytest.raises(ConfigError, match="cors_origins"):
            load_settings(env={"CUPOLA_SERVER__CORS_ORIGINS": bad})
