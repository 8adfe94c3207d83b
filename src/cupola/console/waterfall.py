"""A trace's spans laid out as a waterfall: each span under its parent, with its start and
length as a share of the whole trace (the traces API's span objects, docs/observability.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 8
"""Deeper spans are drawn at this indentation (the page has a class per level)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One span's row: its depth in the tree, and where its bar starts and how long it is,
    in thousandths of the trace's length (an SVG ``viewBox`` of 1000)."""

    span: dict[str, Any]
    depth: int
    offset_ms: float
    x: int
    width: int


def waterfall(spans: list[dict[str, Any]]) -> tuple[list[Bar], float]:
    """The rows of a trace, parents before children and siblings by start time, and the
    trace's length in milliseconds."""
    if not spans:
        return [], 0.0
    start = min(int(s["start_time_unix_nano"]) for s in spans)
    end = max(int(s["end_time_unix_nano"]) for s in spans)
    total = max(end - start, 1)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: int(s["start_time_unix_nano"]))
    rows: list[Bar] = []
    stack: list[tuple[dict[str, Any], int]] = [(s, 0) for s in reversed(children.get(None, []))]
    while stack:
        span, depth = stack.pop()
        begin = int(span["start_time_unix_nano"]) - start
        length = int(span["end_time_unix_nano"]) - int(span["start_time_unix_nano"])
        x = round(1000 * begin / total)
        rows.append(
            Bar(span, min(depth, MAX_DEPTH), begin / 1e6, x, max(2, round(1000 * length / total)))
        )
        stack.extend((c, depth + 1) for c in reversed(children.get(span["span_id"], [])))
    return rows, total / 1e6
