"""Generic help for a small local model that calls tools (the embedded adapter uses it).

A 135M-parameter model follows the shape of its prompt more than its meaning. What measurably
helps it (``bench/bench_tooluse.py``; figures in bench/README.md), none of it tied to any
particular tool or wording:

* :func:`tool_hint`: the tools, one line each, and one line on the reply's two shapes (a
  longer line on when to call a tool and to copy the argument made the model answer in
  words where a tool was wanted, so it was not kept);
* :func:`rank_tools`: the tools listed most relevant first (words shared with the user's
  last message), so the first listed tool is not the one chosen by default;
* :func:`offered_tools`: when one tool clearly has most in common with the message (shared
  words, or a code shaped like a parameter's example), only that tool is offered, and the
  adapter leans the reply toward calling it;
* :func:`copy_arguments`: a text argument the model miscopied (``1234`` for ``AF1234``) is
  replaced by the word the user said that it closely resembles;
* :func:`grounded`: a call whose text or number arguments appear nowhere in what the user
  wrote is an invented call (``Hello!`` becoming ``get_weather(London)``), answered as a
  plain message instead;
* :func:`facts`: a tool's JSON result shown as plain ``key: value`` facts, so the answer
  states them instead of echoing raw JSON.
"""

from __future__ import annotations

import difflib
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
    """A tool's name, description and parameters (names, descriptions, examples and allowed
    values), as words."""
    parts = [tool.name.replace("_", " "), tool.description or ""]
    props = tool.parameters.get("properties")
    if isinstance(props, dict):
        for name, schema in props.items():
            parts.append(name.replace("_", " "))
            if not isinstance(schema, dict):
                continue
            if isinstance(schema.get("description"), str):
                parts.append(schema["description"])
            for key in ("examples", "enum"):
                if isinstance(schema.get(key), list):
                    parts += [str(v) for v in schema[key] if isinstance(v, str | int | float)]
    return " ".join(parts)


_CODE = re.compile(r"[A-Za-z0-9]+")


def _code_shapes(text: str) -> set[str]:
    """The shapes of the codes in ``text`` (words mixing letters and digits): each run of
    capitals, small letters or digits becomes one ``A``, ``a`` or ``9``, so ``BA005`` and
    ``AF1234`` are both ``A9``. A question holding a code shaped like a parameter's example
    is likely about that tool, whatever words it uses."""
    shapes = set()
    for word in _CODE.findall(text):
        if word.isalpha() or word.isdigit():
            continue
        shape = re.sub("[A-Z]+", "A", re.sub("[a-z]+", "a", re.sub("[0-9]+", "9", word)))
        shapes.add(shape)
    return shapes


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def relevance(tools: Sequence[FunctionSpec], messages: Sequence[ChatMessage]) -> list[int]:
    """How much each tool has in common with the user's last message: the words they share
    (compared on their first letters, common words left out), plus the codes shaped alike
    (:func:`_code_shapes`)."""
    text = last_user_text(messages)
    asked, codes = _stems(text), _code_shapes(text)
    return [
        len(asked & _stems(about)) + len(codes & _code_shapes(about))
        for about in (_about(t) for t in tools)
    ]


def rank_tools(
    tools: Sequence[FunctionSpec], messages: Sequence[ChatMessage]
) -> list[FunctionSpec]:
    """The tools, those with most in common with the user's last message first (ties keep
    their order)."""
    scores = relevance(tools, messages)
    order = sorted(range(len(tools)), key=lambda i: -scores[i])
    return [tools[i] for i in order]


def offered_tools(
    tools: Sequence[FunctionSpec], messages: Sequence[ChatMessage]
) -> tuple[list[FunctionSpec], bool]:
    """The tools to offer a small model, most relevant first, and whether the choice is
    confident: when one tool has more in common with the user's last message than every
    other (:func:`relevance`), only that one is offered. Choosing among several tools is
    what a tiny model does worst; deciding between one tool and a reply in words it does
    well."""
    if len(tools) < 2:
        return list(tools), False
    scores = relevance(tools, messages)
    order = sorted(range(len(tools)), key=lambda i: -scores[i])
    best, second = scores[order[0]], scores[order[1]]
    if best > second:
        return [tools[order[0]]], True
    return [tools[i] for i in order], False


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
    said = f" {_normal(_said(messages))} "
    for value in _values(arguments):
        words = _normal(value)
        if words and f" {words} " not in said:
            return False
    return True


_ALIKE = 0.75
"""How closely (difflib's ratio) a miscopied text argument must resemble a word the user
said to be replaced by it."""


def _said(messages: Sequence[ChatMessage]) -> str:
    return " ".join(m.content for m in messages if m.role in ("user", "tool"))


def copy_arguments(arguments: Any, messages: Sequence[ChatMessage]) -> Any:
    """The call's arguments with each text value that the user (or a tool) never said
    replaced by the word they did say that it most resembles, when one resembles it closely.
    A small model that picked the right tool often miscopies a code (``AF1234`` as ``1234``,
    ``DL1`` as ``DAL1``); an invented value (``London`` for ``Hello!``) resembles nothing
    said and is left as it is, for :func:`grounded` to refuse."""
    words = list(dict.fromkeys(_CODE.findall(_said(messages))))
    said = f" {_normal(_said(messages))} "

    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        if not isinstance(value, str) or not _normal(value) or f" {_normal(value)} " in said:
            return value
        wanted = value.strip().lower()
        best, score = value, _ALIKE
        for word in words:
            ratio = difflib.SequenceMatcher(None, wanted, word.lower()).ratio()
            if ratio >= score:
                best, score = word, ratio
        return best

    return fix(arguments)


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
