"""The ``mcp`` tool entry: validated once, echoed in the shape the Responses API returns.

OpenAI's fields (``server_label``, ``server_url``, ``headers``, ``authorization``,
``allowed_tools``, ``require_approval``, ``server_description``), Foundry's
``project_connection_id``, and a cupola extension for local servers spoken to over stdio:
``command`` (the argv list) with optional ``env`` and ``cwd`` instead of ``server_url``.
An entry with neither names a server declared in cupola.yaml (``mcp_servers``) by its
``server_label`` (:class:`McpReference`, run as :func:`declared_entry`).

A ``command`` starts a process on the server, so it is taken only from server-side
definitions (cupola.yaml, toolbox versions and agent versions created with the admin role,
files applied by ``cupola serve --apply``); a request's own ``tools`` reach MCP servers by URL only
(:func:`refuse_request_commands`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cupola.exceptions import UserError

if TYPE_CHECKING:
    from cupola.settings import McpServerConfig

LABEL = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_FILTER_KEYS = frozenset({"tool_names", "read_only"})
_UNSUPPORTED = ("connector_id", "tunnel_id")
_FIELDS = (
    "env",
    "cwd",
    "headers",
    "authorization",
    "allowed_tools",
    "require_approval",
    "project_connection_id",
    "server_description",
)
"""Optional fields, echoed when the entry has them (absent ones stay absent)."""


def _str_map(value: Any, at: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise UserError(f"{at} must be an object of strings", param=at)
    return dict(value)


def _names(value: Any, at: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise UserError(f"{at} must be a list of tool names", param=at)
    return list(value)


def _filter(value: Any, at: str) -> dict[str, Any]:
    """A tool filter: ``{"tool_names": [...], "read_only": bool}`` (both optional)."""
    if not isinstance(value, dict) or not set(value) <= _FILTER_KEYS:
        raise UserError(f"{at} must be an object with tool_names and/or read_only", param=at)
    out: dict[str, Any] = {}
    if value.get("tool_names") is not None:
        out["tool_names"] = _names(value["tool_names"], f"{at}.tool_names")
    if value.get("read_only") is not None:
        if not isinstance(value["read_only"], bool):
            raise UserError(f"{at}.read_only must be true or false", param=f"{at}.read_only")
        out["read_only"] = value["read_only"]
    return out


def _allowed_tools(value: Any, at: str) -> list[str] | dict[str, Any]:
    if isinstance(value, list):
        return _names(value, at)
    return _filter(value, at)


def _require_approval(value: Any, at: str) -> str | dict[str, Any]:
    if value in ("always", "never"):
        return str(value)
    if not isinstance(value, dict) or not set(value) <= {"always", "never"}:
        raise UserError(
            f"{at} must be 'always', 'never' or an object with 'always' and/or 'never' "
            "tool filters",
            param=at,
        )
    return {k: _filter(v, f"{at}.{k}") for k, v in value.items() if v is not None}


def _command(raw: dict[str, Any], where: str) -> list[str]:
    command = raw["command"]
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise UserError(
            f"{where}.command must be a non-empty list of strings (the program and its arguments)",
            param=f"{where}.command",
        )
    for key in ("headers", "authorization", "project_connection_id"):
        if raw.get(key) is not None:
            raise UserError(
                f"{where}.{key} applies to server_url only, not to a command",
                param=f"{where}.{key}",
            )
    return list(command)


def _url(raw: dict[str, Any], where: str) -> str:
    url = raw["server_url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{where}.server_url must be an http(s) URL", param=f"{where}.server_url")
    for key in ("env", "cwd"):
        if raw.get(key) is not None:
            raise UserError(
                f"{where}.{key} applies to a command only, not to server_url",
                param=f"{where}.{key}",
            )
    return str(url)


def normalize_mcp_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate an ``mcp`` tool entry; return its normalized (echoed) shape: the fields it
    has, checked (unknown fields are dropped). ``require_approval`` defaults to ``always``
    where it is used, not in the echo."""
    label = raw.get("server_label")
    if not isinstance(label, str) or not LABEL.match(label):
        raise UserError(
            f"{where}.server_label must be 1-64 letters, digits, '_' or '-'",
            param=f"{where}.server_label",
        )
    for key in _UNSUPPORTED:
        if raw.get(key) is not None:
            raise UserError(
                f"{where}.{key} is not supported by this server; use server_url",
                param=f"{where}.{key}",
                code="unsupported_tool",
            )
    if raw.get("server_url") is not None and raw.get("command") is not None:
        raise UserError(f"{where} takes server_url or command, not both", param=where)
    tool: dict[str, Any]
    if raw.get("command") is not None:
        tool = {"type": "mcp", "server_label": label, "command": _command(raw, where)}
    elif raw.get("server_url") is not None:
        tool = {"type": "mcp", "server_label": label, "server_url": _url(raw, where)}
    else:
        tool = McpReference(type="mcp", server_label=label)
        tool.where = where
        _refuse_overrides(raw, where, label)
    checks: dict[str, Any] = {
        "headers": _str_map,
        "env": _str_map,
        "allowed_tools": _allowed_tools,
        "require_approval": _require_approval,
    }
    for key in _FIELDS:
        if key not in raw:
            continue
        at = f"{where}.{key}"
        check = checks.get(key)
        if check is not None:
            tool[key] = None if raw[key] is None else check(raw[key], at)
        elif raw[key] is not None and not isinstance(raw[key], str):
            raise UserError(f"{at} must be a string", param=at)
        else:
            tool[key] = raw[key]
    return tool


class McpReference(dict[str, Any]):
    """A normalized ``mcp`` entry with neither ``server_url`` nor ``command``: it names a
    server declared in cupola.yaml (``mcp_servers``) by its ``server_label``. ``where`` (the
    entry's place in the request, for error messages) is not part of the echo."""

    where: str = "tools"


def is_reference(tool: dict[str, Any]) -> bool:
    """Whether an ``mcp`` entry names a declared server instead of saying where one is."""
    return (
        tool.get("type") == "mcp" and tool.get("server_url") is None and tool.get("command") is None
    )


_DECLARED_ONLY = ("env", "cwd", "headers", "authorization", "project_connection_id")


def _refuse_overrides(raw: dict[str, Any], where: str, label: str) -> None:
    """A reference narrows a declared server; how it is reached is the declaration's."""
    for key in _DECLARED_ONLY:
        if raw.get(key) is not None:
            raise UserError(
                f"{where}.{key}: MCP server '{label}' is used by name (no server_url or "
                f"command), so how it is reached, {key} included, comes from its declaration "
                "in cupola.yaml (mcp_servers)",
                param=f"{where}.{key}",
                code="declared_mcp_server",
            )


def declared_entry(reference: dict[str, Any], server: McpServerConfig) -> dict[str, Any]:
    """The entry a reference to a declared server runs as: the declaration's command or URL,
    environment, headers and policies, with the reference's ``allowed_tools`` and
    ``require_approval`` applied on top (they narrow, never widen: see :func:`is_allowed`
    and :func:`needs_approval`). Holds secrets: never echoed, stored or logged."""
    tool: dict[str, Any] = {"type": "mcp", "server_label": reference["server_label"]}
    argv = server.argv
    if argv is not None:
        tool["command"] = argv
        tool["env"] = {k: v.get_secret_value() for k, v in server.env.items()}
        if server.cwd is not None:
            tool["cwd"] = str(server.cwd)
    else:
        tool["server_url"] = server.url
        tool["headers"] = {k: v.get_secret_value() for k, v in server.headers.items()}
        if server.authorization is not None:
            tool["authorization"] = server.authorization.get_secret_value()
        if server.connection:
            tool["project_connection_id"] = server.connection
    allowed = server.allowed_tools
    if allowed is not None:
        tool["allowed_tools"] = (
            list(allowed) if isinstance(allowed, list) else allowed.model_dump(exclude_none=True)
        )
    approval = server.require_approval
    tool["require_approval"] = (
        approval if isinstance(approval, str) else approval.model_dump(exclude_none=True)
    )
    if server.description is not None:
        tool["server_description"] = server.description
    for key in ("startup_timeout_seconds", "timeout_seconds"):
        if getattr(server, key) is not None:
            tool[key] = getattr(server, key)
    narrowed = {
        key: reference[key]
        for key in ("allowed_tools", "require_approval")
        if reference.get(key) is not None
    }
    if narrowed:
        tool["narrowed_by"] = narrowed
    if reference.get("server_description"):
        tool["server_description"] = reference["server_description"]
    return tool


def _matches(flt: dict[str, Any], name: str, annotations: dict[str, Any] | None) -> bool | None:
    """Whether a tool passes a filter; None for a filter with no conditions."""
    checks: list[bool] = []
    if "tool_names" in flt:
        checks.append(name in flt["tool_names"])
    if "read_only" in flt:
        checks.append(bool((annotations or {}).get("readOnlyHint")) == flt["read_only"])
    return all(checks) if checks else None


def is_allowed(tool: dict[str, Any], name: str, annotations: dict[str, Any] | None) -> bool:
    """Whether ``allowed_tools`` lets the model see and call tool ``name`` (for a declared
    server, both the declaration's and the request's, see :func:`declared_entry`)."""
    narrowed = tool.get("narrowed_by")
    if narrowed is not None and not _allowed(narrowed, name, annotations):
        return False
    return _allowed(tool, name, annotations)


def _allowed(tool: dict[str, Any], name: str, annotations: dict[str, Any] | None) -> bool:
    allowed = tool.get("allowed_tools")
    if allowed is None:
        return True
    if isinstance(allowed, list):
        return name in allowed
    return _matches(allowed, name, annotations) is not False


def needs_approval(tool: dict[str, Any], name: str, annotations: dict[str, Any] | None) -> bool:
    """Whether ``require_approval`` makes a call of ``name`` wait for the client.

    ``always`` (the default) and ``never`` apply to every tool. With filters, a tool the
    ``always`` filter matches needs approval, one the ``never`` filter matches does not;
    any other tool needs approval unless only an ``always`` filter was given. A declared
    server's call needs approval when its declaration or the request asks for it.
    """
    narrowed = tool.get("narrowed_by")
    if narrowed is not None and "require_approval" in narrowed:
        if _needs_approval(narrowed, name, annotations):
            return True
    return _needs_approval(tool, name, annotations)


def _needs_approval(tool: dict[str, Any], name: str, annotations: dict[str, Any] | None) -> bool:
    policy = tool.get("require_approval", "always")
    if policy in (None, "always"):
        return True
    if policy == "never":
        return False
    always, never = policy.get("always"), policy.get("never")
    if always is not None and _matches(always, name, annotations):
        return True
    if never is not None and _matches(never, name, annotations):
        return False
    return not (always is not None and never is None)


def local_commands(tools: list[dict[str, Any]]) -> list[int]:
    """The positions of the entries that start a process (``mcp`` with ``command``)."""
    return [
        i
        for i, tool in enumerate(tools)
        if isinstance(tool, dict) and tool.get("type") == "mcp" and tool.get("command") is not None
    ]


def refuse_request_commands(tools: list[dict[str, Any]], where: str = "tools") -> None:
    """A request's own tools never start a process on the server: 400 for any ``command``."""
    for i in local_commands(tools):
        at = f"{where}[{i}].command"
        raise UserError(
            f"{at}: a request cannot start a local MCP server. Stdio MCP servers are defined "
            "on the server (cupola.yaml mcp_servers, a toolbox or an agent version created "
            "with the admin role); a request reaches MCP servers by server_url, or uses a "
            'declared one as {"type": "mcp", "server_label": NAME}, a toolbox or an agent by '
            "name",
            param=at,
            code="command_not_allowed",
        )
