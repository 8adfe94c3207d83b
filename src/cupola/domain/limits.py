"""Pure validators for what the stores and the schema tooling cannot hold: NUL characters,
JSON nested too deep, ``$ref`` pointers to nowhere and version numbers past a column's range.

Each raises :class:`UserError` (HTTP 400) naming where the request is wrong.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from cupola.exceptions import UserError

MAX_SCHEMA_DEPTH = 64
"""How deeply a JSON Schema (function parameters, a structured-output format) may nest,
counted in JSON objects and arrays. Far above any real schema, far below what recursive
schema tooling survives."""

NUL = "\x00"


def _path(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def find_nul(value: Any) -> str | None:
    """Where the first NUL character sits in a JSON value (``input[0].content``, ``""`` for
    the value itself), or None. Walks without recursion, so any depth is safe."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return _path(at)
        elif isinstance(node, dict):
            for key, child in node.items():
                if NUL in key:
                    return _path(at)
                stack.append((child, [*at, key]))
        elif isinstance(node, list):
            stack.extend((child, [*at, i]) for i, child in enumerate(node))
    return None


def check_no_nul(value: Any, where: str | None = None) -> None:
    """Refuse a JSON value holding a NUL character anywhere (PostgreSQL's text and jsonb
    cannot store one, so no store accepts it)."""
    at = find_nul(value)
    if at is None:
        return
    param = ".".join(p for p in (where, at) if p) or None
    place = f"{param}: " if param else ""
    raise UserError(
        f"{place}text may not contain the NUL character (\\u0000)",
        param=param,
        code="invalid_value",
    )


def nesting_depth(value: Any, stop_after: int | None = None) -> int:
    """How many JSON objects and arrays nest in ``value`` (a scalar is 0). Walks without
    recursion; stops counting past ``stop_after``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_after is not None and deepest > stop_after:
                    return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth) for child in children)
    return deepest


def check_depth(value: Any, where: str, limit: int = MAX_SCHEMA_DEPTH) -> None:
    """Refuse a schema nested deeper than ``limit`` levels."""
    if nesting_depth(value, stop_after=limit) > limit:
        raise UserError(
            f"{where} is nested more than {limit} levels deep", param=where, code="too_deep"
        )


def _pointer(root: Any, ref: str) -> bool:
    """Whether a local JSON pointer (``#/$defs/x``) names something in ``root``."""
    node = root
    for token in ref[1:].split("/")[1:] if ref != "#" else []:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def _anchors(schema: Any) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            anchor = node.get("$anchor")
            if isinstance(anchor, str):
                found.add(anchor)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def check_refs(schema: Any, where: str) -> None:
    """Refuse a schema whose ``$ref`` points outside it or at nothing in it: no schema is
    ever fetched, so every reference must resolve within the document."""
    anchors: set[str] | None = None
    stack: list[tuple[Any, str]] = [(schema, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, list):
            stack.extend((child, f"{at}[{i}]") for i, child in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str):  # (a property named "$ref" holds a schema, not a string)
            if ref.startswith("#/") or ref == "#":
                ok = _pointer(schema, ref)
            elif ref.startswith("#"):
                anchors = _anchors(schema) if anchors is None else anchors
                ok = ref[1:] in anchors
            else:
                raise UserError(
                    f"{at}.$ref {ref[:80]!r} points outside the schema; only local references "
                    "('#/$defs/...') are resolved",
                    param=where,
                    code="invalid_ref",
                )
            if not ok:
                raise UserError(
                    f"{at}.$ref {ref[:80]!r} does not resolve to anything in the schema",
                    param=where,
                    code="invalid_ref",
                )
        for key, child in node.items():
            if isinstance(child, dict | list):
                stack.append((child, f"{at}.{key}"))


def check_schema_shape(schema: Any, where: str) -> None:
    """What any JSON Schema a request carries must satisfy before schema tooling sees it:
    bounded nesting and references that resolve."""
    check_depth(schema, where)
    check_refs(schema, where)


def strict_flag(value: Any, param: str) -> bool | None:
    """An optional boolean as JSON sends it: ``true``, ``false`` or absent. ``"yes"``, ``1``
    or ``"true"`` are refused rather than guessed at."""
    if value is None or isinstance(value, bool):
        return value
    raise UserError(f"{param} must be true or false, not {str(value)[:40]!r}", param=param)
