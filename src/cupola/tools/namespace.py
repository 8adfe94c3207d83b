"""Namespace tools: a named group of function tools (``{"type": "namespace", "name",
"description", "tools": [...]}``), as Codex CLI sends its sub-agent tools.

The model sees each function of a namespace as a plain function under its served name,
``<namespace>__<name>``; a call the model makes to that name comes back to the client as a
``function_call`` item with ``name`` the function's own name and ``namespace`` the group's
name, which is what the OpenAI Responses API returns and what Codex dispatches on. A client
sending that item back as input gets the same name mapping in reverse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from cupola.exceptions import UserError
from cupola.tools.base import valid_function_name

SEPARATOR = "__"
"""Between a namespace and a function name in the name the model sees."""
_MAX_NAME = 64

FunctionNormalizer = Callable[[dict[str, Any], str], dict[str, Any]]


def served_name(namespace: str | None, name: str) -> str:
    """The name the model knows a function by: its own, or ``<namespace>__<name>`` for a
    function of a namespace. Past 64 characters (the limit every upstream API enforces) the
    name is cut and ends in a hash of the whole, so it stays unique."""
    if not namespace:
        return name
    full = f"{namespace}{SEPARATOR}{name}"
    if len(full) <= _MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: _MAX_NAME - 9]}_{digest}"


def normalize_namespace_tool(
    raw: dict[str, Any], where: str, function: FunctionNormalizer
) -> dict[str, Any]:
    """A namespace entry in its echoed shape. Its ``tools`` are function tools (checked by
    ``function``) and hosted or custom entries, kept as sent for the caller to leave out."""
    from cupola.tools.hosted import is_unserved

    name = raw.get("name")
    if not valid_function_name(name):
        raise UserError(
            f"{where}.name must be 1-64 letters, digits, '_' or '-'", param=f"{where}.name"
        )
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise UserError(f"{where}.description must be a string", param=f"{where}.description")
    members = raw.get("tools")
    if not isinstance(members, list) or not members:
        raise UserError(
            f"{where}.tools must be a non-empty list of function tools", param=f"{where}.tools"
        )
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, member in enumerate(members):
        at = f"{where}.tools[{i}]"
        kind = member.get("type") if isinstance(member, dict) else None
        if isinstance(member, dict) and isinstance(kind, str) and is_unserved(kind):
            tools.append(dict(member))
            continue
        if kind != "function" or not isinstance(member, dict):
            raise UserError(
                f"{at} must be a function tool (a namespace groups function tools)",
                param=f"{at}.type",
                code="unsupported_tool",
            )
        tool = function(member, at)
        if tool["name"] in seen:
            raise UserError(f"{at}: function {tool['name']!r} is declared twice", param=at)
        seen.add(tool["name"])
        tools.append(tool)
    return {"type": "namespace", "name": name, "description": description or "", "tools": tools}


def namespaced_functions(
    tools: Iterable[dict[str, Any]],
) -> Iterable[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(served name, namespace entry, function entry) for every function of a namespace."""
    for tool in tools:
        if tool["type"] != "namespace":
            continue
        for member in tool["tools"]:
            if member["type"] == "function":
                yield served_name(tool["name"], member["name"]), tool, member


def namespace_map(tools: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Served name -> (namespace, function name), to name the calls the model makes."""
    return {
        served: (space["name"], member["name"])
        for served, space, member in namespaced_functions(tools)
    }


def check_served_names(tools: list[dict[str, Any]]) -> None:
    """Refuse (400) a tool list where two functions would reach the model under one name:
    a plain function ``a__b`` and the function ``b`` of namespace ``a``, say."""
    seen = {str(t["name"]) for t in tools if t["type"] == "function"}
    for served, space, member in namespaced_functions(tools):
        if served in seen:
            raise UserError(
                f"function {member['name']!r} of namespace {space['name']!r} reaches the model "
                f"as {served!r}, which another tool already uses",
                param="tools",
            )
        seen.add(served)
