"""``cupola export``: a conversation's responses, or named responses, as Open Responses
traces (``GET /traces/export``, docs/observability.md "Trace export"), written as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from cupola.cli.client import client_for, connection_options, one_line_errors


def register(cli: click.Group) -> None:
    @cli.command("export")
    @click.option("--conversation", "conversation", help="Every response of this conversation.")
    @click.option(
        "--response", "responses", multiple=True, help="This response (repeatable, in order)."
    )
    @click.option(
        "--output", "-o", type=click.Path(path_type=Path), help="Write here (default: stdout)."
    )
    @connection_options
    @one_line_errors
    def export(
        conversation: str | None,
        responses: tuple[str, ...],
        output: Path | None,
        config: Path | None,
        endpoint: str | None,
    ) -> None:
        """Export stored responses as Open Responses traces: each MCP call as a
        function_call and its function_call_output, the answer with its conversation_id."""
        if bool(conversation) == bool(responses):
            raise click.UsageError("give --conversation or --response (not both)")
        params: dict[str, Any] = {"format": "open-responses"}
        if conversation:
            params["conversation_id"] = conversation
        else:
            params["response_ids"] = ",".join(responses)
        with client_for(config, endpoint) as client:
            document = client.get("/traces/export", **params)
        text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
        if output is None:
            click.echo(text)
        else:
            output.write_text(text + "\n")
            click.echo(f"wrote {len(document.get('data') or [])} turns to {output}")
