"""API keys: required off loopback (or when configured), sent in any of the three headers,
each valid on one project with one role."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from cupola.cli.main import cli
from cupola.domain import ApiKey, Role
from cupola.server.access import guard_routes, required_role
from cupola.server.app import create_app, keys_required
from cupola.server.middleware import RequestContext
from cupola.settings import Settings
from live_server import LiveServer, make_settings, postgres_database, start_server


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


# ---- projects and roles ------------------------------------------------------------------

TRAVEL_MCP = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge" / "mcp_server.py"
STDIO_TOOL = {
    "type": "mcp",
    "server_label": "travel",
    "command": [sys.executable, str(TRAVEL_MCP)],
    "require_approval": "never",
}


@dataclass
class Op:
    """One request and the least role it needs."""

    role: Role
    method: str
    path: str  # under the project URL; {u} becomes a name unique to the caller
    json: Any = None
    files: Any = None


OPS = [
    Op(Role.READER, "GET", "/deployments"),
    Op(Role.READER, "GET", "/openai/v1/models"),
    Op(Role.READER, "GET", "/agents"),
    Op(Role.READER, "GET", "/toolboxes"),
    Op(Role.READER, "GET", "/connections"),
    Op(Role.READER, "GET", "/openai/v1/files"),
    Op(Role.USER, "POST", "/openai/v1/responses", {"model": "echo", "input": "hi"}),
    Op(Role.USER, "POST", "/openai/v1/conversations", {}),
    Op(
        Role.USER,
        "POST",
        "/openai/v1/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
    ),
    Op(
        Role.USER,
        "POST",
        "/anthropic/v1/messages",
        {"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    ),
    Op(Role.USER, "POST", "/openai/v1/files", files={"file": ("a.txt", b"hello")}),
    Op(Role.USER, "POST", "/openai/v1/vector_stores", {"name": "v"}),
    Op(Role.CONTRIBUTOR, "POST", "/agents/a-{u}/versions", {"definition": {"model": "echo"}}),
    Op(
        Role.CONTRIBUTOR,
        "POST",
        "/toolboxes/t-{u}/versions",
        {"tools": [{"type": "mcp", "server_label": "w", "server_url": "https://example.com/mcp"}]},
    ),
    Op(
        Role.CONTRIBUTOR,
        "PUT",
        "/connections/c-{u}",
        {
            "type": "ApiKey",
            "target": "https://api.example.com",
            "credentials": {"type": "ApiKey", "key": "k-12345"},
        },
    ),
    Op(
        Role.ADMIN,
        "POST",
        "/agents/s-{u}/versions",
        {"definition": {"model": "weather-bot", "tools": [STDIO_TOOL]}},
    ),
    Op(Role.ADMIN, "POST", "/toolboxes/s-{u}/versions", {"tools": [STDIO_TOOL]}),
]


@pytest.fixture(scope="module")
def role_keys(guarded: LiveServer) -> dict[Role, str]:
    store = guarded.services.store
    return {role: store.create_key_sync(f"role-{role.label}", "default", role)[1] for role in Role}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.label)
def test_each_role_can_do_exactly_its_part(
    guarded: LiveServer, role_keys: dict[Role, str], role: Role, unique: str
) -> None:
    headers = {"Authorization": f"Bearer {role_keys[role]}"}
    for op in OPS:
        url = guarded.project_url + op.path.format(u=f"{role.label}-{unique}")
        data = {"purpose": "assistants"} if op.files else None
        r = httpx.request(
            op.method, url, json=op.json, files=op.files, data=data, headers=headers, timeout=60
        )
        if role >= op.role:
            assert r.status_code == 200, (role.label, op.method, op.path, r.text)
        else:
            assert r.status_code == 403, (role.label, op.method, op.path, r.text)
            error = r.json().get("error", {})
            assert error["type"] == "permission_error", r.text
            if op.role == Role.ADMIN and role == Role.CONTRIBUTOR:
                # the route is a contributor's; the command in the body is what needs admin
                assert "only an API key with the admin role" in error["message"], r.text
                assert error["param"].endswith(".command")
            else:
                route_role = min(op.role, Role.CONTRIBUTOR)  # admin ops are contributor routes
                assert f"needs the {route_role.label} role" in error["message"], r.text


def test_a_user_runs_what_an_admin_defined(
    guarded: LiveServer, role_keys: dict[Role, str], unique: str
) -> None:
    """The admin's stdio server runs for a user key (keys required: a served deployment),
    both as an agent's tool and as a toolbox named in the request."""
    admin = {"Authorization": f"Bearer {role_keys[Role.ADMIN]}"}
    agent, box = f"stdio-agent-{unique}", f"stdio-box-{unique}"
    base = guarded.project_url
    definition = {"model": "weather-bot", "tools": [STDIO_TOOL]}
    r = httpx.post(
        f"{base}/agents/{agent}/versions", json={"definition": definition}, headers=admin
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"{base}/toolboxes/{box}/versions", json={"tools": [STDIO_TOOL]}, headers=admin)
    assert r.status_code == 200, r.text
    sdk = openai.OpenAI(
        base_url=guarded.openai_url, api_key=role_keys[Role.USER], max_retries=0, timeout=60
    )
    by_agent = sdk.responses.create(
        input="What is the weather in Tokyo?", extra_body={"agent_reference": {"name": agent}}
    )
    assert by_agent.output_text == "It is sunny in Tokyo, twenty degrees."
    by_box = sdk.responses.create(
        model="weather-bot",
        input="What is the weather in Tokyo?",
        tools=[{"type": "toolbox", "name": box}],  # type: ignore[list-item]
    )
    assert [i.type for i in by_box.output] == ["mcp_list_tools", "mcp_call", "message"]
    # and even an admin key cannot put a command in a request
    admin_sdk = openai.OpenAI(
        base_url=guarded.openai_url, api_key=role_keys[Role.ADMIN], max_retries=0
    )
    with pytest.raises(openai.BadRequestError, match="cannot start a local MCP server"):
        admin_sdk.responses.create(
            model="echo",
            input="hi",
            tools=[STDIO_TOOL],  # type: ignore[list-item]
        )


def test_loopback_urls_are_refused_once_keys_are_required(
    guarded: LiveServer, role_keys: dict[Role, str]
) -> None:
    """A request's server_url on the server's own machine is not a way in (tools.allow_loopback
    unset: loopback only while no key is needed)."""
    sdk = openai.OpenAI(base_url=guarded.openai_url, api_key=role_keys[Role.USER], max_retries=0)
    local = {
        "type": "mcp",
        "server_label": "local",
        "server_url": f"{guarded.url}/api/projects/default/toolboxes/x/mcp",
        "require_approval": "never",
    }
    response = sdk.responses.create(model="echo", input="hi", tools=[local])  # type: ignore[list-item]
    listing = response.output[0]
    assert listing.type == "mcp_list_tools"
    assert "loopback" in str(listing.error)  # type: ignore[union-attr]
    assert guarded.settings.loopback_tools_allowed is False


def test_a_key_works_only_on_its_own_project(guarded: LiveServer, unique: str) -> None:
    store = guarded.services.store
    _key, other = store.create_key_sync(f"other-{unique}", "other", Role.ADMIN)
    _key, mine = store.create_key_sync(f"mine-{unique}", "default", Role.ADMIN)
    for url in (
        f"{guarded.project_url}/deployments",
        f"{guarded.url}/v1/models",  # the /v1 alias belongs to the default project
        f"{guarded.project_url}/openai/v1/models",
    ):
        r = httpx.get(url, headers={"api-key": other})
        assert r.status_code == 403, url
        assert r.json()["error"]["code"] == "wrong_project"
        assert "belongs to project 'other', not 'default'" in r.json()["error"]["message"]
        assert httpx.get(url, headers={"api-key": mine}).status_code == 200
    anthropic_call = httpx.post(
        f"{guarded.url}/anthropic/v1/messages",
        json={"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": other},
    )
    assert anthropic_call.status_code == 403
    assert anthropic_call.json()["error"]["type"] == "permission_error"
    r = httpx.get(f"{guarded.url}/api/projects/other/deployments", headers={"api-key": mine})
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_project"
    sdk = openai.OpenAI(base_url=guarded.openai_url, api_key=other, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        sdk.responses.create(model="echo", input="hi")


def test_every_route_has_a_role(guarded: LiveServer) -> None:
    """A route missing from the table needs admin; none of today's routes is missing."""
    from cupola.server.access import unlisted_routes
    from cupola.server.middleware import OPEN_PATHS

    app = create_app(guarded.settings, guarded.services)
    while not hasattr(app, "routes"):  # through the pure-ASGI middleware to Starlette's app
        app = app.app
    assert unlisted_routes(app.routes, OPEN_PATHS) == []
    assert required_role("POST", "/some/new/route") is Role.ADMIN
    assert required_role("GET", "/some/new/route") is Role.ADMIN
    assert required_role("HEAD", "/deployments") is Role.READER


async def test_an_unlisted_route_needs_admin_and_the_key_cache_keeps_the_role() -> None:
    """Through the real middleware and guard (ASGI, no socket): a route nobody listed, and a
    key verified once whose role is then served from the cache."""
    keys = {
        "cpl-reader": ApiKey("k1", "r", "cpl-reader", 0, project="default", role=Role.READER),
        "cpl-admin": ApiKey("k2", "a", "cpl-admin", 0, project="default", role=Role.ADMIN),
    }
    checked: list[str] = []

    async def check(secret: str) -> ApiKey | None:
        checked.append(secret)
        return keys.get(secret)

    async def endpoint(_request: Request) -> Response:
        return PlainTextResponse("made")

    routes: list[BaseRoute] = [
        Mount("/api/projects/{project}", routes=[Route("/brand-new", endpoint, methods=["POST"])]),
        Route("/deployments", endpoint, methods=["GET"]),
    ]
    guard_routes(routes, "default")
    app = RequestContext(Starlette(routes=routes), require_key=True, check_key=check)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        url = "/api/projects/default/brand-new"
        for _ in range(3):
            r = await client.post(url, headers={"api-key": "cpl-reader"})
            assert r.status_code == 403 and "needs the admin role" in r.json()["error"]["message"]
        assert checked == ["cpl-reader"]  # verified once, its role cached with it
        r = await client.post(url, headers={"api-key": "cpl-admin"})
        assert r.status_code == 200 and r.text == "made"


def test_cli_creates_and_lists_scoped_keys(database_url: str, tmp_path: Path, unique: str) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text(f"project: travel\ndatabase_url: {database_url}\n")
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["keys", "create", f"ci-{unique}", "--role", "contributor", "--config", str(config)],
    )
    assert made.exit_code == 0, made.output
    assert "for project travel with role contributor" in made.output
    other = runner.invoke(
        cli,
        ["keys", "create", f"rd-{unique}", "--project", "p2", "--role", "reader"]
        + ["--config", str(config)],
    )
    assert other.exit_code == 0, other.output
    default_role = runner.invoke(cli, ["keys", "create", f"u-{unique}", "--config", str(config)])
    assert "with role user" in default_role.output
    listed = runner.invoke(cli, ["keys", "list", "--config", str(config)], env={"COLUMNS": "200"})
    lines = {line.split()[1]: line.split() for line in listed.output.splitlines()[1:] if line}
    assert lines[f"ci-{unique}"][2:4] == ["travel", "contributor"]
    assert lines[f"rd-{unique}"][2:4] == ["p2", "reader"]
    assert lines[f"u-{unique}"][2:4] == ["travel", "user"]
    bad = runner.invoke(cli, ["keys", "create", "x", "--role", "owner", "--config", str(config)])
    assert bad.exit_code != 0 and "owner" in bad.output


def test_keys_made_before_roles_become_default_project_admins(database_url: str) -> None:
    """Migration 0004: a key from before keeps the rights it had, on the default project."""
    from alembic import command
    from alembic.config import Config

    from cupola.store.engine import MIGRATIONS, migrate
    from cupola.store.tables import api_keys

    if database_url.startswith("sqlite"):
        ctx: Any = contextlib.nullcontext(database_url.replace(".db", f"-{time.time_ns()}.db"))
    else:
        ctx = postgres_database(database_url.rsplit("/", 1)[0] + "/postgres")
    with ctx as url:
        engine = sa.create_engine(url)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.connect() as conn, conn.begin():
            config.attributes["connection"] = conn
            command.upgrade(config, "0003")
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, prefix, secret_hash, created_at) "
                    "VALUES ('key_old', 'old', 'cpl-old', 'abc', 1)"
                )
            )
        migrate(engine)
        with engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == "key_old")).one()
        engine.dispose()
    assert (row.project, row.role) == ("default", "admin")
