"""``cupola connections``: named credentials that tools use by ``project_connection_id``.

Secret values never go on the command line (where shell history and ``ps`` would keep
them): they are read from environment variables (``--key-env``, ``--header NAME=VAR``) or
from standard input (``--key-stdin``). The server never sends them back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from cupola.cli.client import CliError, client_for, connection_options, one_line_errors
from cupola.cli.output import print_table
from cupola.domain.connections import CREDENTIAL_TYPES, HEADER_NAME_KEY
from cupola.exceptions import NotFound


def _from_env(variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise CliError(f"environment variable {variable} (for {what}) is not set or empty")
    return value


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CliError(f"{option} takes NAME=VALUE, not {raw.split('=', 1)[0]!r}...")
        out[key.strip()] = value.strip()
    return out


def _credentials(
    auth: str | None,
    key_env: str | None,
    key_stdin: bool,
    headers: tuple[str, ...],
) -> dict[str, Any]:
    """The ``credentials`` body field, reading secret values from the environment or stdin."""
    if key_env and key_stdin:
        raise CliError("give the key either with --key-env or with --key-stdin, not both")
    has_key = bool(key_env or key_stdin)
    if auth is None:
        auth = "CustomKeys" if headers else "ApiKey" if has_key else "None"
    if headers and auth != "CustomKeys":
        raise CliError("--header is for --auth CustomKeys")
    if auth == "CustomKeys":
        if not headers or has_key:
            raise CliError("--auth CustomKeys takes one or more --header NAME=ENV_VAR")
        names = _pairs(headers, "--header")
        return {
            "type": auth,
            "keys": {h: _from_env(v, f"header {h}") for h, v in names.items()},
        }
    if auth == "None":
        if has_key:
            raise CliError("--auth None takes no key")
        return {"type": auth}
    if not has_key:
        raise CliError(f"--auth {auth} needs the key: --key-env VAR or --key-stdin")
    if key_env:
        secret = _from_env(key_env, "the key")
    else:
        secret = sys.stdin.read().strip()
        if not secret:
            raise CliError("--key-stdin read an empty key")
    field_name = "token" if auth == "BearerToken" else "key"
    return {"type": auth, field_name: secret}


def _describe(c: dict[str, Any]) -> str:
    lines = [
        f"name:        {c.get('name')}",
        f"id:          {c.get('id')}",
        f"type:        {c.get('type')}",
        f"target:      {c.get('target')}",
        f"credentials: {(c.get('credentials') or {}).get('type', '-')} (secret not shown)",
        f"default:     {'yes' if c.get('isDefault') else 'no'}",
    ]
    for key, value in (c.get("metadata") or {}).items():
        lines.append(f"metadata:    {key}={value}")
    return "\n".join(lines)


def _connections_group() -> click.Group:
    @click.group("connections")
    def connections() -> None:
        """Named credentials (API keys, tokens, headers) that tools use."""

    @connections.command("create")
    @click.argument("name")
    @click.option(
        "--type",
        "connection_type",
        required=True,
        help="Connection type: ApiKey, CustomKeys, RemoteTool_Preview, OpenAPI ...",
    )
    @click.option("--target", required=True, help="The URL the connection reaches.")
    @click.option(
        "--auth",
        type=click.Choice(CREDENTIAL_TYPES),
        help="Credential type (default: CustomKeys with --header, ApiKey with a key, else None).",
    )
    @click.option("--key-env", metavar="VAR", help="Read the key or token from this variable.")
    @click.option("--key-stdin", is_flag=True, help="Read the key or token from standard input.")
    @click.option(
        "--header",
        "headers",
        multiple=True,
        metavar="NAME=ENV_VAR",
        help="CustomKeys: send header NAME with the value of ENV_VAR (repeatable).",
    )
    @click.option("--header-name", help="ApiKey: send the key in this header, not as a bearer.")
    @click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable).")
    @click.option("--default", "is_default", is_flag=True, help="The default of its type.")
    @click.option("--replace", is_flag=True, help="Replace a connection of the same name.")
    @connection_options
    @one_line_errors
    def create(
        name: str,
        connection_type: str,
        target: str,
        auth: str | None,
        key_env: str | None,
        key_stdin: bool,
        headers: tuple[str, ...],
        header_name: str | None,
        metadata: tuple[str, ...],
        is_default: bool,
        replace: bool,
        config: Path | None,
        endpoint: str | None,
    ) -> None:
        """Create (or with --replace, replace) a connection."""
        meta = _pairs(metadata, "--metadata")
        if header_name:
            meta[HEADER_NAME_KEY] = header_name
        credentials = _credentials(auth, key_env, key_stdin, headers)
        if header_name and credentials["type"] != "ApiKey":
            raise CliError("--header-name is for --auth ApiKey")
        body = {
            "type": connection_type,
            "target": target,
            "credentials": credentials,
            "metadata": meta,
            "isDefault": is_default,
        }
        with client_for(config, endpoint) as client:
            try:
                client.get(f"/connections/{name}")
                exists = True
            except NotFound:
                exists = False
            if exists and not replace:
                raise CliError(f"connection {name} already exists (use --replace to replace it)")
            saved = client.request("PUT", f"/connections/{name}", json=body)
        state = "replaced" if exists else "created"
        click.echo(f"{state} connection {saved.get('name')} ({saved.get('id')})")

    @connections.command("list")
    @click.option("--type", "connection_type", help="Only connections of this type.")
    @connection_options
    @one_line_errors
    def list_connections(
        connection_type: str | None, config: Path | None, endpoint: str | None
    ) -> None:
        """List connections (never their secrets)."""
        params = {"connectionType": connection_type} if connection_type else {}
        with client_for(config, endpoint) as client:
            found = client.get("/connections", **params).get("value") or []
        rows = [
            [
                str(c.get("name")),
                str(c.get("type")),
                str((c.get("credentials") or {}).get("type", "-")),
                "yes" if c.get("isDefault") else "",
                str(c.get("target")),
            ]
            for c in found
        ]
        print_table(["NAME", "TYPE", "AUTH", "DEFAULT", "TARGET"], rows, "no connections")

    @connections.command("show")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print the connection as JSON.")
    @connection_options
    @one_line_errors
    def show(name: str, as_json: bool, config: Path | None, endpoint: str | None) -> None:
        """Show a connection (its secret is never shown)."""
        with client_for(config, endpoint) as client:
            found = client.get(f"/connections/{name}")
        click.echo(json.dumps(found, indent=2) if as_json else _describe(found))

    @connections.command("delete")
    @click.argument("name")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection_options
    @one_line_errors
    def delete(name: str, yes: bool, config: Path | None, endpoint: str | None) -> None:
        """Delete a connection and its secret."""
        if not yes:
            click.confirm(f"delete connection {name}?", abort=True)
        with client_for(config, endpoint) as client:
            client.delete(f"/connections/{name}")
        click.echo(f"deleted connection {name}")

    return connections


def register(cli: click.Group) -> None:
    cli.add_command(_connections_group())
