"""``cupola keys``: API keys. These work directly on the store, because creating the first
key must work before any key exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import sqlalchemy as sa

from cupola.cli.client import CliError, one_line_errors
from cupola.cli.output import print_table, when
from cupola.domain import Role
from cupola.settings import load_settings
from cupola.store import SqlStore

_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@contextmanager
def _store(config: Path | None) -> Iterator[SqlStore]:
    """The store cupola.yaml names, migrated; database failures become one-line errors."""
    url = load_settings(config).resolved_database_url
    try:
        store = SqlStore(url)
        try:
            store.migrate()
            yield store
        finally:
            store.engine.dispose()
    except sa.exc.SQLAlchemyError as exc:
        detail = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
        where = sa.engine.make_url(url).render_as_string(hide_password=True)
        raise CliError(f"database {where}: {' '.join(detail.split())}") from None


def _keys_group() -> click.Group:
    config_option = click.option(
        "--config", type=click.Path(path_type=Path), help="cupola.yaml to use."
    )

    @click.group("keys")
    def keys() -> None:
        """Manage API keys (directly in the database named by cupola.yaml)."""

    @keys.command("create")
    @click.argument("name")
    @click.option(
        "--project",
        help="The project the key may be used on (default: the project cupola.yaml serves).",
    )
    @click.option(
        "--role",
        type=click.Choice([r.label for r in Role]),
        default=Role.USER.label,
        show_default=True,
        help="reader: read only; user: also run agents, responses, conversations, files; "
        "contributor: also change agents, toolboxes, connections; admin: also define "
        "tools that start processes.",
    )
    @config_option
    @one_line_errors
    def create(name: str, project: str | None, role: str, config: Path | None) -> None:
        """Create a key for one project with one role; its secret is printed once."""
        if not name.strip():
            raise CliError("a key needs a name")
        project = project if project is not None else load_settings(config).project
        if not _PROJECT.match(project):
            raise CliError("a project name is 1-63 letters, digits, '_', '.' or '-'")
        with _store(config) as store:
            key, secret = store.create_key_sync(name, project, Role.parse(role))
        click.echo(
            f"created key {key.name} ({key.id}) for project {key.project} "
            f"with role {key.role.label}"
        )
        click.echo(secret)
        click.secho(
            "store this secret now: it is not shown again (only a hash is kept)",
            err=True,
            fg="yellow",
        )

    @keys.command("list")
    @config_option
    @one_line_errors
    def list_keys(config: Path | None) -> None:
        """List keys (never their secrets)."""
        with _store(config) as store:
            found = store.list_keys_sync()
        rows = [
            [
                k.id,
                k.name,
                k.project,
                k.role.label,
                k.prefix + "...",
                when(k.created_at),
                f"revoked {when(k.revoked_at)}" if k.revoked_at else "active",
            ]
            for k in found
        ]
        print_table(
            ["ID", "NAME", "PROJECT", "ROLE", "PREFIX", "CREATED", "STATUS"], rows, "no keys"
        )

    @keys.command("revoke")
    @click.argument("id_or_name")
    @config_option
    @one_line_errors
    def revoke(id_or_name: str, config: Path | None) -> None:
        """Revoke a key by id or name; requests with it are refused from then on."""
        with _store(config) as store:
            key = store.revoke_key_sync(id_or_name)
        click.echo(f"revoked key {key.name} ({key.id})")

    return keys


def register(cli: click.Group) -> None:
    cli.add_command(_keys_group())
