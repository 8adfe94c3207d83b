"""``cupola``: the command group. Each command group lives in its own module."""

from __future__ import annotations

import sys

import click

from cupola import __version__
from cupola.cli import (
    agents,
    chat,
    connections,
    deployments,
    diff,
    export,
    keys,
    serve,
    toolboxes,
)
from cupola.exceptions import CupolaError


@click.group()
@click.version_option(__version__, prog_name="cupola")
def cli() -> None:
    """cupola: a self-hosted, Foundry-compatible agent platform."""


serve.register(cli)
agents.register(cli)
chat.register(cli)
deployments.register(cli)
keys.register(cli)
connections.register(cli)
toolboxes.register(cli)
diff.register(cli)
export.register(cli)


def main() -> None:
    """Entry point: one-line errors, never a traceback, for anything the user can fix."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CupolaError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
