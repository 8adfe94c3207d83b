"""What changed between two versions of an agent: instructions and tools line by line, the
model and every other definition field side by side."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

LineKind = Literal["same", "added", "removed"]


@dataclass(frozen=True, slots=True)
class Line:
    kind: LineKind
    text: str


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One definition field in both versions (``changed`` when they differ)."""

    name: str
    before: str
    after: str
    changed: bool


@dataclass(slots=True)
class VersionDiff:
    instructions: list[Line] = field(default_factory=list)
    tools: list[Line] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def instructions_changed(self) -> bool:
        return any(line.kind != "same" for line in self.instructions)

    @property
    def tools_changed(self) -> bool:
        return any(line.kind != "same" for line in self.tools)

    @property
    def identical(self) -> bool:
        changed = any(f.changed for f in self.fields)
        return not (changed or self.instructions_changed or self.tools_changed)


_LINE_FIELDS = ("instructions", "tools")


def shown(value: Any) -> str:
    """A definition value as the diff shows it: text as is, the rest as indented JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def line_diff(before: str, after: str) -> list[Line]:
    """``after`` against ``before``, line by line (every line, so the whole text reads)."""
    lines: list[Line] = []
    for row in difflib.ndiff(before.splitlines(), after.splitlines()):
        tag, text = row[:2], row[2:]
        if tag == "  ":
            lines.append(Line("same", text))
        elif tag == "- ":
            lines.append(Line("removed", text))
        elif tag == "+ ":
            lines.append(Line("added", text))
    return lines


def diff_definitions(before: dict[str, Any], after: dict[str, Any]) -> VersionDiff:
    """Compare two agent definitions (the ``definition`` of two versions)."""
    out = VersionDiff(
        instructions=line_diff(shown(before.get("instructions")), shown(after.get("instructions"))),
        tools=line_diff(shown(before.get("tools") or []), shown(after.get("tools") or [])),
    )
    names = sorted(set(before) | set(after), key=lambda n: (n not in ("kind", "model"), n))
    for name in names:
        if name in _LINE_FIELDS:
            continue
        old, new = before.get(name), after.get(name)
        out.fields.append(FieldChange(name, shown(old), shown(new), old != new))
    return out
