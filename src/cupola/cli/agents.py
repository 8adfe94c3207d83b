"""``cupola agent``, ``cupola deployments`` and ``cupola keys``.

Agents and deployments go through the HTTP API (so they work against any cupola server);
keys work directly on the store, because creating the first key must work before any key
exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from cupola.cli.client import (
    CliError,
    CupolaClient,
    connection_options,
    one_line_errors,
    settings_for,
)
from cupola.domain.manifest import load_agent_file
from cupola.exceptions import NotFound
from cupola.settings import load_settings
from cupola.store import SqlStore


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


def _client(config: Path | None, endpoint: str | None) -> CupolaClient:
    return CupolaClient.from_settings(settings_for(config, endpoint))


def _version_path(name: str, version: int | None) -> str:
    return f"/agents/{name}" if version is None else f"/agents/{name}/versions/{version}"


def get_version(client: CupolaClient, name: str, version: int | None) -> dict[str, Any]:
    """One version object (the latest when ``version`` is None)."""
    found: dict[str, Any] = client.get(_version_path(name, version))
    if version is None:
        latest: dict[str, Any] = found["versions"]["latest"]
        return latest
    return found


def _latest_number(client: CupolaClient, name: str) -> int | None:
    try:
        return int(get_version(client, name, None)["version"])
    except NotFound:
        return None


def apply_file(client: CupolaClient, path: Path) -> str:
    """Create a version from an agent file; say whether it is new or the same content."""
    manifest = load_agent_file(path)
    before = _latest_number(client, manifest.name)
    version = client.post(f"/agents/{manifest.name}/versions", manifest.body())
    number = int(version["version"])
    # Versions only ever count up, so an existing version has a number no higher than the
    # latest before; identical content returns that version instead of creating one.
    state = "unchanged" if before is not None and number <= before else "created"
    return f"agent {manifest.name} version {number} ({state})"


def _describe(version: dict[str, Any]) -> str:
    definition = version.get("definition") or {}
    lines = [
        f"name:        {version.get('name')}",
        f"version:     {version.get('version')}",
        f"model:       {definition.get('model', '-')}",
        f"created:     {when(version.get('created_at'))}",
    ]
    if version.get("description"):
        lines.append(f"description: {version['description']}")
    for key, value in (version.get("metadata") or {}).items():
        lines.append(f"metadata:    {key}={value}")
    for tool in definition.get("tools") or []:
        label = tool.get("name") or tool.get("type")
        summary = f" - {tool['description']}" if tool.get("description") else ""
        lines.append(f"tool:        {label}{summary}")
    instructions = definition.get("instructions")
    if instructions:
        lines.append("instructions:")
        lines.extend(f"  {line}" for line in str(instructions).splitlines())
    return "\n".join(lines)


def _agent_group() -> click.Group:
    @click.group("agent")
    def agent() -> None:
        """Create, inspect and delete versioned agents."""

    @agent.command("apply")
    @click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        required=True,
        type=click.Path(path_type=Path),
        help="Agent YAML file (repeatable).",
    )
    @connection_options
    @one_line_errors
    def apply(files: tuple[Path, ...], config: Path | None, endpoint: str | None) -> None:
        """Create a new version of each agent file whose content changed."""
        with _client(config, endpoint) as client:
            for path in files:
                click.echo(apply_file(client, path))

    @agent.command("list")
    @connection_options
    @one_line_errors
    def list_agents(config: Path | None, endpoint: str | None) -> None:
        """List agents with their latest version."""
        with _client(config, endpoint) as client:
            agents = client.list_all("/agents", order="asc")
        rows = []
        for item in sorted(agents, key=lambda a: str(a.get("name"))):
            latest = (item.get("versions") or {}).get("latest") or {}
            definition = latest.get("definition") or {}
            rows.append(
                [
                    str(item.get("name")),
                    str(latest.get("version", "-")),
                    str(definition.get("model", "-")),
                    when(latest.get("created_at")),
                ]
            )
        print_table(["NAME", "VERSION", "MODEL", "CREATED"], rows, "no agents")

    @agent.command("show")
    @click.argument("name")
    @click.option("--version", type=int, help="Version number (default: the latest).")
    @click.option("--json", "as_json", is_flag=True, help="Print the version object as JSON.")
    @connection_options
    @one_line_errors
    def show(
        name: str,
        version: int | None,
        as_json: bool,
        config: Path | None,
        endpoint: str | None,
    ) -> None:
        """Show one version of an agent."""
        with _client(config, endpoint) as client:
            found = get_version(client, name, version)
        click.echo(json.dumps(found, indent=2) if as_json else _describe(found))

    @agent.command("versions")
    @click.argument("name")
    @connection_options
    @one_line_errors
    def versions(name: str, config: Path | None, endpoint: str | None) -> None:
        """List an agent's versions, newest first."""
        with _client(config, endpoint) as client:
            found = client.list_all(f"/agents/{name}/versions", order="desc")
        rows = [
            [
                str(v.get("version")),
                str((v.get("definition") or {}).get("model", "-")),
                when(v.get("created_at")),
                str(v.get("description") or ""),
            ]
            for v in found
        ]
        print_table(
            ["VERSION", "MODEL", "CREATED", "DESCRIPTION"], rows, f"agent {name} has no versions"
        )

    @agent.command("delete")
    @click.argument("name")
    @click.option("--version", type=int, help="Delete only this version.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection_options
    @one_line_errors
    def delete(
        name: str, version: int | None, yes: bool, config: Path | None, endpoint: str | None
    ) -> None:
        """Delete an agent (every version) or one version."""
        what = f"agent {name}" + (f" version {version}" if version is not None else "")
        if not yes:
            click.confirm(f"delete {what}?", abort=True)
        with _client(config, endpoint) as client:
            client.delete(_version_path(name, version))
        click.echo(f"deleted {what}")

    return agent


def _deployments_group() -> click.Group:
    @click.group("deployments")
    def deployments() -> None:
        """The model deployments the server offers."""

    @deployments.command("list")
    @connection_options
    @one_line_errors
    def list_deployments(config: Path | None, endpoint: str | None) -> None:
        """List model deployments."""
        with _client(config, endpoint) as client:
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
    @config_option
    @one_line_errors
    def create(name: str, config: Path | None) -> None:
        """Create a key; its secret is printed once."""
        if not name.strip():
            raise CliError("a key needs a name")
        with _store(config) as store:
            key, secret = store.create_key_sync(name)
        click.echo(f"created key {key.name} ({key.id})")
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
                k.prefix + "...",
                when(k.created_at),
                f"revoked {when(k.revoked_at)}" if k.revoked_at else "active",
            ]
            for k in found
        ]
        print_table(["ID", "NAME", "PREFIX", "CREATED", "STATUS"], rows, "no keys")

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
    cli.add_command(_agent_group())
    cli.add_command(_deployments_group())
    cli.add_command(_keys_group())
