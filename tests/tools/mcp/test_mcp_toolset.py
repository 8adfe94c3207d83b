"""McpToolset: the ``mcp`` tool entry, and the items it produces in their wire shape
(parsed with the ``openai`` SDK's own types)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp_http import STDIO_SERVER, HttpMcpServer
from openai.types.responses.response_output_item import (
    McpApprovalRequest,
    McpCall,
    McpListTools,
)
from openai.types.responses.tool import Mcp

from cupola.exceptions import NotFound, UserError
from cupola.models.base import ToolCall
from cupola.settings import ToolSettings
from cupola.tools.base import ToolContext
from cupola.tools.egress import EgressPolicy
from cupola.tools.mcp.client import McpPool
from cupola.tools.mcp.toolset import McpToolset, normalize_mcp_tool, render_mcp_call

SECRET = "sk-live-7f3a9c2e-never-show-me"


class Secrets:
    """A SecretResolver with one connection."""

    async def headers_for(self, project: str, connection: str) -> dict[str, str]:
        if (project, connection) != ("proj", "mcp-conn"):
            raise NotFound(f"connection {connection!r} not found")
        return {"Authorization": f"Bearer {SECRET}"}


def _ctx(history: list[dict[str, Any]] | None = None) -> ToolContext:
    return ToolContext("proj", "resp_1", None, Path("."), history or [])


def _toolset(pool: McpPool, secrets: Secrets | None = None, **entry: Any) -> McpToolset:
    tool = normalize_mcp_tool({"type": "mcp", "server_label": "calc", **entry}, "tools[0]")
    return McpToolset(tool, pool, secrets, "proj")


def _call(name: str, arguments: Any = None, raw: str | None = None) -> ToolCall:
    return ToolCall("call_1", name, raw if raw is not None else json.dumps(arguments or {}))


# -- the tool entry ------------------------------------------------------------------


def test_normalize_url_entry_matches_the_openai_tool_shape() -> None:
    raw = {
        "type": "mcp",
        "server_label": "calc",
        "server_url": "https://mcp.example.com/mcp",
        "headers": {"X-Team": "blue"},
        "allowed_tools": {"tool_names": ["add"]},
        "require_approval": {"never": {"tool_names": ["add"]}},
        "server_description": "sums",
    }
    tool = normalize_mcp_tool({**raw, "unknown": 1}, "tools[0]")
    assert tool == raw
    Mcp.model_validate(tool)
    minimal = {"type": "mcp", "server_label": "a", "server_url": "http://h/"}
    assert normalize_mcp_tool(minimal, "t") == minimal
    nulls = {**minimal, "headers": None, "allowed_tools": None, "require_approval": None}
    assert normalize_mcp_tool(nulls, "t") == nulls


def test_normalize_stdio_entry() -> None:
    tool = normalize_mcp_tool(
        {"type": "mcp", "server_label": "local", "command": ["srv", "--x"], "env": {"A": "1"}},
        "tools[1]",
    )
    assert tool == {
        "type": "mcp",
        "server_label": "local",
        "command": ["srv", "--x"],
        "env": {"A": "1"},
    }


@pytest.mark.parametrize(
    ("entry", "param"),
    [
        ({"server_label": "bad label", "server_url": "http://h/"}, "tools[2].server_label"),
        ({"server_label": "x" * 65, "server_url": "http://h/"}, "tools[2].server_label"),
        ({"server_label": "a", "env": {"A": "b"}}, "tools[2].env"),  # a declared server's
        ({"server_label": "a", "server_url": "http://h/", "command": ["x"]}, "tools[2]"),
        ({"server_label": "a", "server_url": "ftp://h/"}, "tools[2].server_url"),
        ({"server_label": "a", "command": []}, "tools[2].command"),
        ({"server_label": "a", "command": "srv --x"}, "tools[2].command"),
        ({"server_label": "a", "command": ["x"], "headers": {"A": "b"}}, "tools[2].headers"),
        ({"server_label": "a", "server_url": "http://h/", "cwd": "/"}, "tools[2].cwd"),
        ({"server_label": "a", "server_url": "http://h/", "headers": {"A": 1}}, "tools[2].headers"),
        (
            {"server_label": "a", "server_url": "http://h/", "require_approval": "sometimes"},
            "tools[2].require_approval",
        ),
        (
            {"server_label": "a", "server_url": "http://h/", "require_approval": {"always": []}},
            "tools[2].require_approval.always",
        ),
        (
            {"server_label": "a", "server_url": "http://h/", "allowed_tools": "add"},
            "tools[2].allowed_tools",
        ),
        (
            {"server_label": "a", "server_url": "http://h/", "allowed_tools": {"names": ["a"]}},
            "tools[2].allowed_tools",
        ),
        ({"server_label": "a", "connector_id": "connector_gmail"}, "tools[2].connector_id"),
        (
            {"server_label": "a", "server_url": "http://h/", "server_description": 3},
            "tools[2].server_description",
        ),
    ],
)
def test_normalize_rejects_bad_entries(entry: dict[str, Any], param: str) -> None:
    with pytest.raises(UserError) as caught:
        normalize_mcp_tool({"type": "mcp", **entry}, "tools[2]")
    assert caught.value.param == param


# -- start and functions ---------------------------------------------------------------


async def test_start_lists_tools_once_per_conversation(
    pool: McpPool, http_server: HttpMcpServer
) -> None:
    toolset = _toolset(pool, server_url=http_server.url, allowed_tools=["add", "echo", "fail"])
    [item] = await toolset.start(_ctx())
    listing = McpListTools.model_validate(item)
    assert item["id"].startswith("mcpl_") and listing.error is None
    assert listing.server_label == "calc"
    assert [t.name for t in listing.tools] == ["add", "echo", "fail"]
    add = item["tools"][0]
    assert add["annotations"] == {"readOnlyHint": True}
    assert add["input_schema"]["properties"]["a"]["type"] == "integer"

    specs = {f.name: f for f in toolset.functions()}
    assert set(specs) == {"add", "echo", "fail"}
    assert specs["add"].description == "Add two integers."
    assert specs["add"].parameters == add["input_schema"]

    again = _toolset(pool, server_url=http_server.url, allowed_tools=["add", "echo", "fail"])
    assert await again.start(_ctx([item])) == []
    assert {f.name for f in again.functions()} == {"add", "echo", "fail"}
    # a listing of another server, or a failed one, does not count
    other = {**item, "server_label": "other"}
    failed = {**item, "error": "boom", "tools": []}
    assert len(await again.start(_ctx([other, failed]))) == 1


async def test_allowed_tools_filter_by_read_only(pool: McpPool, http_server: HttpMcpServer) -> None:
    toolset = _toolset(pool, server_url=http_server.url, allowed_tools={"read_only": True})
    [item] = await toolset.start(_ctx())
    assert [t["name"] for t in item["tools"]] == ["add"]


async def test_listing_failure_is_an_item_and_offers_nothing(pool: McpPool) -> None:
    toolset = _toolset(pool, server_url="http://127.0.0.1:9/mcp")
    [item] = await toolset.start(_ctx())
    listing = McpListTools.model_validate(item)
    assert listing.tools == []
    assert listing.error is not None
    assert listing.error.startswith("MCP server 'calc' is unreachable: ")
    assert toolset.functions() == []
    # a failed listing is reported again, even when an earlier one succeeded
    seen = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "calc", "tools": []}
    assert len(await toolset.start(_ctx([seen]))) == 1


async def test_stdio_toolset(pool: McpPool) -> None:
    toolset = _toolset(pool, command=[sys.executable, STDIO_SERVER], require_approval="never")
    [item] = await toolset.start(_ctx())
    assert "pid" in [t["name"] for t in item["tools"]]
    done = await toolset.run(_call("add", {"a": 20, "b": 22}), _ctx())
    assert (done["status"], done["output"]) == ("completed", "42")


# -- approval ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, {"add": True, "echo": True}),
        ("always", {"add": True, "echo": True}),
        ("never", {"add": False, "echo": False}),
        ({"never": {"tool_names": ["add"]}}, {"add": False, "echo": True}),
        ({"always": {"tool_names": ["echo"]}}, {"add": False, "echo": True}),
        ({"never": {"read_only": True}}, {"add": False, "echo": True}),
        (
            {"always": {"tool_names": ["add"]}, "never": {"tool_names": ["add", "echo"]}},
            {"add": True, "echo": False},
        ),
    ],
)
async def test_requires_approval(
    pool: McpPool, http_server: HttpMcpServer, policy: Any, expected: dict[str, bool]
) -> None:
    toolset = _toolset(pool, server_url=http_server.url, require_approval=policy)
    await toolset.start(_ctx())
    assert {name: toolset.requires_approval(_call(name)) for name in expected} == expected


async def test_approval_request_item(pool: McpPool, http_server: HttpMcpServer) -> None:
    toolset = _toolset(pool, server_url=http_server.url)
    call = _call("add", {"a": 1, "b": 2})
    item = toolset.approval_request(call)
    request = McpApprovalRequest.model_validate(item)
    assert item["id"].startswith("mcpr_")
    assert (request.server_label, request.name, request.arguments) == (
        "calc",
        "add",
        call.arguments,
    )
    done = await toolset.run(call, _ctx(), approval_request_id=item["id"])
    assert McpCall.model_validate(done).approval_request_id == item["id"]
    assert done["output"] == "3"


# -- run -------------------------------------------------------------------------------


async def test_run_returns_an_mcp_call(pool: McpPool, http_server: HttpMcpServer) -> None:
    toolset = _toolset(pool, server_url=http_server.url)
    await toolset.start(_ctx())
    item = await toolset.run(_call("add", {"a": 2, "b": 3}), _ctx())
    call = McpCall.model_validate(item)
    assert item["id"].startswith("mcp_")
    assert (call.status, call.output, call.error, call.name) == ("completed", "5", None, "add")
    assert call.approval_request_id is None
    assert render_mcp_call(item) is not None
    rendered = render_mcp_call(item)
    assert rendered is not None
    assert (rendered.call.name, rendered.call.arguments, rendered.output) == (
        "add",
        item["arguments"],
        "5",
    )


async def test_tool_error_becomes_a_failed_item(pool: McpPool, http_server: HttpMcpServer) -> None:
    toolset = _toolset(pool, server_url=http_server.url)
    await toolset.start(_ctx())
    item = await toolset.run(_call("fail"), _ctx())
    call = McpCall.model_validate(item)
    assert (call.status, call.output) == ("failed", None)
    assert item["error"]["type"] == "mcp_tool_execution_error"
    rendered = render_mcp_call(item)
    assert rendered is not None and rendered.output.startswith("error: ")
    assert "the tool failed on purpose" in rendered.output

    rejected = await toolset.run(_call("reject"), _ctx())
    McpCall.model_validate(rejected)
    assert rejected["error"]["type"] == "mcp_protocol_error"
    assert rejected["error"]["code"] == -32602


async def test_timeout_becomes_a_failed_item_within_the_timeout(
    http_server: HttpMcpServer,
) -> None:
    pool = McpPool(EgressPolicy(ToolSettings(timeout_seconds=0.5, allow_loopback=True)))
    toolset = _toolset(pool, server_url=http_server.url)
    await toolset.start(_ctx())
    started = time.monotonic()
    item = await toolset.run(_call("slow", {"seconds": 5}), _ctx())
    assert time.monotonic() - started < 1.0
    McpCall.model_validate(item)
    assert item["status"] == "failed"
    assert item["error"] == {
        "type": "mcp_protocol_error",
        "code": -32001,
        "message": "MCP server 'calc' timed out after 0.5 s while running tool 'slow'",
    }
    await pool.aclose()


async def test_unusable_servers_and_bad_calls_become_failed_items(pool: McpPool) -> None:
    gone = _toolset(pool, server_url="http://127.0.0.1:9/mcp")
    item = await gone.run(_call("add", {"a": 1, "b": 1}), _ctx())
    McpCall.model_validate(item)
    assert item["status"] == "failed"
    assert item["error"]["message"].startswith("MCP server 'calc' is unreachable")

    denied = _toolset(
        McpPool(EgressPolicy(ToolSettings())), server_url="https://mcp.example.com/mcp"
    )
    item = await denied.run(_call("add", {}), _ctx())
    McpCall.model_validate(item)
    assert item["error"]["type"] == "http_error" and item["error"]["code"] == 403

    bad_json = await gone.run(_call("add", raw="{not json"), _ctx())
    assert bad_json["error"]["code"] == -32602
    assert "not valid JSON" in bad_json["error"]["message"]
    not_object = await gone.run(_call("add", raw="[1, 2]"), _ctx())
    assert not_object["error"]["message"] == "the arguments must be a JSON object"


class BrokenSecrets(Secrets):
    """A secret store that fails (a database down, a key that no longer decrypts)."""

    async def headers_for(self, project: str, connection: str) -> dict[str, str]:
        raise RuntimeError(f"cannot decrypt {SECRET}")


async def test_a_broken_secret_store_is_a_failed_item_showing_nothing_of_it(
    pool: McpPool,
) -> None:
    toolset = _toolset(
        pool,
        BrokenSecrets(),
        server_url="https://mcp.example.com/mcp",
        project_connection_id="mcp-conn",
    )
    [listing] = await toolset.start(_ctx())
    item = await toolset.run(_call("add", {"a": 1}), _ctx())
    for error in (listing["error"], item["error"]["message"]):
        assert error == (
            "MCP server 'calc' could not use connection 'mcp-conn': "
            "the secret store failed (RuntimeError)"
        )
    assert item["status"] == "failed" and SECRET not in json.dumps(item)


async def test_only_allowed_tools_run(pool: McpPool, http_server: HttpMcpServer) -> None:
    toolset = _toolset(pool, server_url=http_server.url, allowed_tools=["add"])
    await toolset.start(_ctx())
    item = await toolset.run(_call("pid"), _ctx())
    assert item["status"] == "failed"
    assert item["error"]["message"] == "tool 'pid' is not offered by MCP server 'calc'"


async def test_output_is_capped(http_server: HttpMcpServer) -> None:
    pool = McpPool(EgressPolicy(ToolSettings(max_response_bytes=101, allow_loopback=True)))
    toolset = _toolset(pool, server_url=http_server.url)
    item = await toolset.run(_call("big", {"size": 1000}), _ctx())
    output = item["output"]
    assert output.startswith("é" * 50 + "\n[output truncated: 2000 bytes, the first 101 shown]")
    await pool.aclose()


# -- credentials -------------------------------------------------------------------------


async def test_connection_headers_reach_the_server_and_nothing_else(
    pool: McpPool, http_server: HttpMcpServer
) -> None:
    toolset = _toolset(
        pool,
        Secrets(),
        server_url=http_server.url,
        project_connection_id="mcp-conn",
        headers={"X-Team": "blue"},
    )
    items = await toolset.start(_ctx())
    whoami = await toolset.run(_call("whoami"), _ctx())
    leaked = await toolset.run(_call("whoami", {"reveal": True}), _ctx())
    assert whoami["output"] == "ok"
    seen = http_server.stats.tool_headers[-1]
    assert seen["authorization"] == f"Bearer {SECRET}"
    assert seen["x-team"] == "blue"
    assert leaked["output"] == "you sent ***"

    unreachable = _toolset(
        pool, Secrets(), server_url="http://127.0.0.1:9/mcp", project_connection_id="mcp-conn"
    )
    items += await unreachable.start(_ctx())
    failed = await unreachable.run(_call("add"), _ctx())
    missing = _toolset(pool, Secrets(), server_url=http_server.url, project_connection_id="nope")
    [listing] = await missing.start(_ctx())
    assert listing["error"] == "connection 'nope' not found"
    no_store = _toolset(pool, None, server_url=http_server.url, project_connection_id="x")
    [no_store_listing] = await no_store.start(_ctx())
    assert "has no connections" in no_store_listing["error"]

    everything = json.dumps([*items, whoami, leaked, failed, listing, no_store_listing])
    assert SECRET not in everything
    assert "Bearer" not in everything
    assert SECRET not in repr(toolset._spec)


async def test_a_rejected_credential_is_an_http_error(pool: McpPool) -> None:
    server = HttpMcpServer(token="the-right-token")
    try:
        toolset = _toolset(pool, Secrets(), server_url=server.url, project_connection_id="mcp-conn")
        [listing] = await toolset.start(_ctx())
        item = await toolset.run(_call("add", {"a": 1, "b": 1}), _ctx())
    finally:
        server.stop()
    assert listing["error"].startswith("MCP server 'calc' answered HTTP 401")
    McpCall.model_validate(item)
    assert item["error"]["type"] == "http_error"
    assert item["error"]["code"] == 401
    assert server.stats.headers[0]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps([listing, item])


async def test_tool_names_functions_cannot_carry_are_aliased(
    pool: McpPool, http_server: HttpMcpServer
) -> None:
    toolset = _toolset(pool, server_url=http_server.url, allowed_tools=["math.double"])
    [listing] = await toolset.start(_ctx())
    assert [t["name"] for t in listing["tools"]] == ["math.double"]
    assert [f.name for f in toolset.functions()] == ["math_double"]
    call = _call("math_double", {"x": 21})
    assert toolset.requires_approval(call)
    request = toolset.approval_request(call)
    assert request["name"] == "math.double"
    item = await toolset.run(call, _ctx(), approval_request_id=request["id"])
    assert (item["name"], item["output"]) == ("math.double", "42")
    # an approved request names the tool itself
    again = await toolset.run(_call("math.double", {"x": 1}), _ctx())
    assert again["output"] == "2"
    rendered = render_mcp_call(item)
    assert rendered is not None and rendered.call.name == "math_double"


def test_render_handles_string_errors_and_unfinished_calls() -> None:
    base = {"id": "mcp_1", "type": "mcp_call", "server_label": "s", "name": "add"}
    rendered = render_mcp_call({**base, "arguments": "{}", "error": "boom", "output": None})
    assert rendered is not None and rendered.output == "error: boom"
    assert rendered.call.call_id == "mcp_1"
    rendered = render_mcp_call({**base, "status": "in_progress"})
    assert rendered is not None and rendered.call.arguments == "{}"
    assert rendered.output == "error: the call did not finish (status in_progress)"
    assert render_mcp_call({"type": "mcp_call"}) is None
