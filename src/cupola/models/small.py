"""Generic help for a small local model that calls tools (the embedded adapter uses it).

A 135M-parameter model follows the shape of its prompt more than its meaning. What measurably
helps it (``bench/bench_tooluse.py``; figures in bench/README.md), none of it tied to any
particular tool or wording:

* :func:`tool_hint`: the tools, one line each, and one line on the reply's two shapes (a
  longer line on when to call a tool and to copy the argument made the model answer in
  words where a tool was wanted, so it was not kept);
* :func:`rank_tools`: the tools listed most relevant first (words shared with the user's
  last message), so the first listed tool is not the one chosen by default;
* :func:`grounded`: a call whose text or number arguments appear nowhere in what the user
  wrote is an invented call (``Hello!`` becoming ``get_weather(London)``), answered as a
  plain message instead;
* :func:`facts`: a tool's JSON result shown as plain ``key: value`` facts, so the answer
  states them instead of echoing raw JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from cupola.models.base import ChatMessage, FunctionSpec

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from get give has have how i in is it its me my "
    "of on or please set tell than that the their them then there this to up use was what when "
    "where which who why will with you your".split()
)
_STEM = 5
"""Words are compared on their first letters: ``minute``/``minutes``, ``define``/``definition``."""


def _stems(text: str) -> set[str]:
    return {w[:_STEM] for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def _about(tool: FunctionSpec) -> str:
    """A tool's name, description and parameter names and descriptions, as words."""
    parts = [tool.name.replace("_", " "), tool.description or ""]
    props = tool.parameters.get("properties")
    if isinstance(props, dict):
        for name, schema in props.items():
            parts.append(name.replace("_", " "))
            if isinstance(schema, dict) and isinstance(schema.get("description"), str):
                parts.append(schema["description"])
    return " ".join(parts)


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def rank_tools(
    tools: Sequence[FunctionSpec], messages: Sequence[ChatMessage]
) -> list[FunctionSpec]:
    """The tools, those sharing the most words with the user's last message first (ties keep
    their order)."""
    asked = _stems(last_user_text(messages))
    if not asked:
        return list(tools)
    scores = {id(t): len(asked & _stems(_about(t))) for t in tools}
    return sorted(tools, key=lambda t: -scores[id(t)])


def tool_hint(tools: Sequence[FunctionSpec], message: bool) -> str:
    """The system-prompt lines that present the tools and say when to call one."""
    lines = ["You have these tools:"]
    for tool in tools:
        props = tool.parameters.get("properties")
        args = ", ".join(props) if isinstance(props, dict) else ""
        about = (tool.description or "").strip().split("\n", 1)[0][:160]
        lines.append(f"- {tool.name}({args})" + (f": {about}" if about else ""))
    if message:
        lines.append(
            'Reply with JSON. Use {"tool": name, "arguments": {...}} when a tool gives what '
            'the user asks for. For anything else, reply {"message": "..."}.'
        )
    else:
        lines.append('Reply with JSON: call a tool with {"tool": name, "arguments": {...}}.')
    return "\n".join(lines)


def _normal(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _values(arguments: Any) -> Iterable[str]:
    """The text and number leaves of a call's arguments (booleans and nulls say nothing)."""
    if isinstance(arguments, dict):
        for value in arguments.values():
            yield from _values(value)
    elif isinstance(arguments, list):
        for value in arguments:
            yield from _values(value)
    elif isinstance(arguments, str):
        yield arguments
    elif isinstance(arguments, int | float) and not isinstance(arguments, bool):
        yield f"{arguments:g}"


def grounded(arguments: Any, messages: Sequence[ChatMessage]) -> bool:
    """Whether every text or number argument of a call appears (as whole words, case and
    punctuation aside) in what the user or a tool said; a call with no such argument is."""
    said = f" {_normal(' '.join(m.content for m in messages if m.role in ('user', 'tool')))} "
    for value in _values(arguments):
        words = _normal(value)
        if words and f" {words} " not in said:
            return False
    return True


def _flatten(value: Any, key: str, out: list[str]) -> None:
    label = key.replace("_", " ").strip()
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{label} {k}" if label else str(k), out)
    elif isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        joined = ", ".join(str(v) for v in value)
        out.append(f"{label}: {joined}" if label else joined)
    elif isinstance(value, list):
        for n, v in enumerate(value, 1):
            _flatten(v, f"{label} {n}".strip(), out)
    else:
        text = (
            "none"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        out.append(f"{label}: {text}" if label else text)


def facts(content: str, limit: int = 1500) -> str:
    """A tool result as plain facts: JSON objects and arrays become ``key: value`` lines
    joined by ``; ``; anything else is kept as it is. At most ``limit`` characters."""
    text = content.strip()
    if text[:1] in ("{", "["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict | list):
            out: list[str] = []
            _flatten(value, "", out)
            text = "; ".join(out)
    return text if len(text) <= limit else text[:limit] + "..."
