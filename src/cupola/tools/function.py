"""Function tools: validated once, echoed in the shape the Responses API returns."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from cupola.domain.limits import check_schema_shape
from cupola.exceptions import UserError
from cupola.models.base import FunctionSpec
from cupola.tools.base import valid_function_name
from cupola.tools.hosted import is_unserved
from cupola.tools.namespace import namespaced_functions, normalize_namespace_tool


def _function_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    name = raw.get("name")
    if not valid_function_name(name):
        raise UserError(
            f"{where}.name must be 1-64 letters, digits, '_' or '-'", param=f"{where}.name"
        )
    params = raw.get("parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise UserError(f"{where}.parameters must be a JSON Schema object", param=where)
        if params.get("type", "object") != "object":
            raise UserError(f"{where}.parameters must describe an object", param=where)
        check_schema_shape(params, f"{where}.parameters")
        try:
            Draft202012Validator.check_schema(params)
        except SchemaError as exc:
            raise UserError(
                f"{where}.parameters is not a valid JSON Schema: {exc.message}", param=where
            ) from None
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise UserError(f"{where}.description must be a string", param=where)
    strict = raw.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise UserError(f"{where}.strict must be a boolean", param=where)
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": params,
        "strict": strict,
    }


def tool_key(tool: dict[str, Any]) -> str:
    """What makes a tool entry unique in a list: a function's name, a server tool's label."""
    if tool["type"] == "function":
        return str(tool["name"])
    if tool["type"] == "namespace":
        return f"namespace:{tool['name']}"
    openapi = tool.get("openapi") or {}
    label = tool.get("server_label") or openapi.get("name") or tool.get("name") or ""
    return f"{tool['type']}:{label}"


def normalize_tools(raw: Any, where: str = "tools") -> list[dict[str, Any]]:
    """Validate a tool list; return it in its echoed wire shape. Names must be unique.
    Entries of a type this server has no provider for are kept as sent (and not checked):
    ``cupola.tools.hosted.split_unserved`` leaves them out of a response."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(f"{where} must be a list", param=where)
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"{at} must be an object", param=at)
        kind = item.get("type")
        if isinstance(kind, str) and is_unserved(kind):
            tools.append(dict(item))
            continue
        if kind == "function":
            tool = _function_tool(item, at)
            key = tool["name"]
        elif kind == "namespace":
            tool = normalize_namespace_tool(item, at, _function_tool)
            key = tool_key(tool)
        else:
            from cupola.tools.registry import normalize_server_tool

            tool = normalize_server_tool(item, at)
            key = tool_key(tool)
        if key in seen:
            raise UserError(f"{at}: tool {key!r} is declared twice", param=at)
        seen.add(key)
        tools.append(tool)
    return tools


def _spec(name: str, tool: dict[str, Any], description: str | None) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        description=description,
        parameters=tool["parameters"] or {"type": "object", "properties": {}},
        strict=tool["strict"],
    )


def function_specs(tools: list[dict[str, Any]]) -> tuple[FunctionSpec, ...]:
    """The functions the model is offered, in the order of the tools: a function tool as
    it is, a namespace as its functions under their served names (each description led by
    the namespace's)."""
    specs: list[FunctionSpec] = []
    for tool in tools:
        if tool["type"] == "function":
            specs.append(_spec(tool["name"], tool, tool["description"]))
        elif tool["type"] == "namespace":
            for served, space, member in namespaced_functions([tool]):
                texts = (space["description"], member["description"])
                specs.append(_spec(served, member, "\n\n".join(t for t in texts if t) or None))
    return tuple(specs)
