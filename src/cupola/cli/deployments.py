"""``cupola deployments``: the model deployments a server offers."""

from __future__ import annotations

from pathlib import Path

import click

from cupola.cli.client import client_for, connection_options, one_line_errors
from cupola.cli.output import print_table


def _deployments_group() -> click.Group:
    @click.group("deployments")
    def deployments() -> None:
        """The model deployments the server offers."""

    @deployments.command("list")
    @connection_options
    @one_line_errors
    def list_deployments(config: Path | None, endpoint: str | None) -> None:
        """List model deployments."""
        with client_for(config, endpoint) as client:
            found = client.get("/deployments").get("value") or []
        rows = [
            [
                str(d.get("name")),
                str((d.get("sku") or {}).get("name") or "-"),
                str(d.get("modelPublisher") or "-"),
                str(d.get("modelName") or "-"),
            ]
            for d in found
        ]
        print_table(["NAME", "PROVIDER", "PUBLISHER", "MODEL"], rows, "no deployments")

    return deployments


def register(cli: click.Group) -> None:
    cli.add_command(_deployments_group())
