"""Terminal output shared by the CLI's command groups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def when(timestamp: Any) -> str:
    """A Unix timestamp as local time, or ``-``."""
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def print_table(columns: list[str], rows: list[list[str]], empty: str) -> None:
    """A plain table; the last column is cut short to fit the terminal, never wrapped."""
    if not rows:
        click.echo(empty)
        return
    console = Console(highlight=False)
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    room = max(12, console.width - sum(widths[:-1]) - 2 * (len(columns) - 1))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        tail = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
        table.add_row(*row[:-1], tail)
    console.print(table)


def version_lines(
    version: dict[str, Any], *, marker: str = "", model: str | None = None
) -> list[str]:
    """The head of ``show`` for an agent or toolbox version: name, number, dates, metadata."""
    lines = [
        f"name:        {version.get('name')}",
        f"version:     {version.get('version')}{marker}",
    ]
    if model is not None:
        lines.append(f"model:       {model}")
    lines.append(f"created:     {when(version.get('created_at'))}")
    if version.get("description"):
        lines.append(f"description: {version['description']}")
    for key, value in (version.get("metadata") or {}).items():
        lines.append(f"metadata:    {key}={value}")
    return lines
