"""``cupola toolbox``: toolboxes go through the HTTP API, so they work against any cupola
server (or a Foundry project)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cupola.cli.client import (
    CupolaClient,
    client_for,
    connection_options,
    one_line_errors,
)
from cupola.cli.labels import add_label_commands, labels_by_version
from cupola.cli.manifests import load_toolbox_file
from cupola.cli.output import print_table, version_lines, when
from cupola.domain.toolboxes import tool_label
from cupola.exceptions import NotFound


def _toolbox(client: CupolaClient, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.get(f"/toolboxes/{name}")
    except NotFound:
        return None
    return found


def _latest_number(client: CupolaClient, name: str) -> int | None:
    found = _toolbox(client, name)
    return None if found is None else int(found["versions"]["latest"]["version"])


def _promote(client: CupolaClient, name: str, version: int | str) -> dict[str, Any]:
    found: dict[str, Any] = client.request(
        "PATCH", f"/toolboxes/{name}", json={"default_version": str(version)}
    )
    return found


def apply_file(client: CupolaClient, path: Path, promote: bool = False) -> str:
    """Create a version from a toolbox file; say whether it is new and which is the default."""
    manifest = load_toolbox_file(path)
    before = _latest_number(client, manifest.name)
    version = client.post(f"/toolboxes/{manifest.name}/versions", manifest.body())
    number = int(version["version"])
    # Versions only ever count up, so an existing version has a number no higher than the
    # latest before; identical content returns that version instead of creating one.
    state = "unchanged" if before is not None and number <= before else "created"
    toolbox = _toolbox(client, manifest.name) or {}
    default = str(toolbox.get("default_version"))
    if default == str(number):
        note = "default"
    elif promote:
        _promote(client, manifest.name, number)
        note = f"now the default, was version {default}"
    else:
        note = f"default is version {default}"
    return f"toolbox {manifest.name} version {number} ({state}, {note})"


def _tool_line(tool: dict[str, Any]) -> str:
    kind = str(tool.get("type"))
    if kind == "mcp":
        target = (
            tool.get("server_url")
            or " ".join(tool.get("command") or [])
            or "(declared in the server's cupola.yaml)"
        )
    elif kind == "file_search":
        target = ", ".join(tool.get("vector_store_ids") or [])
    else:
        target = ""
    parts = [tool_label(tool), f"({kind})", str(target), str(tool.get("description") or "")]
    return " ".join(p for p in parts if p)


def _describe(version: dict[str, Any], default: str | None, endpoint: str) -> str:
    number = str(version.get("version"))
    marker = " (default)" if number == default else ""
    lines = version_lines(version, marker=marker)
    for tool in version.get("tools") or []:
        lines.append(f"tool:        {_tool_line(tool)}")
    if version.get("mcp_endpoint"):
        lines.append(f"endpoint:    {endpoint}{version['mcp_endpoint']}")
    return "\n".join(lines)


def _toolbox_group() -> click.Group:
    @click.group("toolbox")
    def toolbox() -> None:
        """Create, promote, label and delete versioned toolboxes (tools served as one MCP
        endpoint)."""

    @toolbox.command("apply")
    @click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        required=True,
        type=click.Path(path_type=Path),
        help="Toolbox YAML file (repeatable).",
    )
    @click.option("--promote", is_flag=True, help="Make the applied version the default.")
    @connection_options
    @one_line_errors
    def apply(
        files: tuple[Path, ...], promote: bool, config: Path | None, endpoint: str | None
    ) -> None:
        """Create a new version of each toolbox file whose content changed."""
        with client_for(config, endpoint) as client:
            for path in files:
                click.echo(apply_file(client, path, promote))

    @toolbox.command("list")
    @connection_options
    @one_line_errors
    def list_toolboxes(config: Path | None, endpoint: str | None) -> None:
        """List toolboxes with their default and latest versions."""
        with client_for(config, endpoint) as client:
            found = client.list_all("/toolboxes", order="asc")
        rows = []
        for item in sorted(found, key=lambda t: str(t.get("name"))):
            latest = (item.get("versions") or {}).get("latest") or {}
            rows.append(
                [
                    str(item.get("name")),
                    str(item.get("default_version", "-")),
                    str(latest.get("version", "-")),
                    when(item.get("updated_at")),
                    str(latest.get("description") or ""),
                ]
            )
        print_table(["NAME", "DEFAULT", "LATEST", "UPDATED", "DESCRIPTION"], rows, "no toolboxes")

    @toolbox.command("show")
    @click.argument("name")
    @click.option(
        "--version", help="Version number or label, e.g. 3 or prod (default: the default)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the version object as JSON.")
    @connection_options
    @one_line_errors
    def show(
        name: str, version: str | None, as_json: bool, config: Path | None, endpoint: str | None
    ) -> None:
        """Show one version of a toolbox (the default version unless --version)."""
        with client_for(config, endpoint) as client:
            found: dict[str, Any] = client.get(f"/toolboxes/{name}")
            default = str(found.get("default_version"))
            number = default if version is None else str(version)
            shown: dict[str, Any] = client.get(f"/toolboxes/{name}/versions/{number}")
            if version is None and found.get("mcp_endpoint"):
                shown = {**shown, "mcp_endpoint": found["mcp_endpoint"]}
            root = client.endpoint
        click.echo(json.dumps(shown, indent=2) if as_json else _describe(shown, default, root))

    @toolbox.command("versions")
    @click.argument("name")
    @connection_options
    @one_line_errors
    def versions(name: str, config: Path | None, endpoint: str | None) -> None:
        """List a toolbox's versions, newest first; * marks the default, LABELS lists the
        labels pointing at each."""
        with client_for(config, endpoint) as client:
            default = str(client.get(f"/toolboxes/{name}").get("default_version"))
            found = client.list_all(f"/toolboxes/{name}/versions", order="desc")
            labels = labels_by_version(client, "toolboxes", name)
        rows = [
            [
                str(v.get("version")) + (" *" if str(v.get("version")) == default else ""),
                ", ".join(labels.get(str(v.get("version")), [])) or "-",
                str(len(v.get("tools") or [])),
                when(v.get("created_at")),
                str(v.get("description") or ""),
            ]
            for v in found
        ]
        print_table(
            ["VERSION", "LABELS", "TOOLS", "CREATED", "DESCRIPTION"],
            rows,
            f"toolbox {name} has no versions",
        )

    @toolbox.command("promote")
    @click.argument("name")
    @click.argument("version", type=int)
    @connection_options
    @one_line_errors
    def promote(name: str, version: int, config: Path | None, endpoint: str | None) -> None:
        """Make VERSION the default version: the toolbox's endpoint serves it from now on."""
        with client_for(config, endpoint) as client:
            before = client.get(f"/toolboxes/{name}").get("default_version")
            after = _promote(client, name, version).get("default_version")
        if str(before) == str(after):
            click.echo(f"toolbox {name} default version {after} (unchanged)")
        else:
            click.echo(f"toolbox {name} default version {after} (was {before})")

    @toolbox.command("delete")
    @click.argument("name")
    @click.option("--version", type=int, help="Delete only this version.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection_options
    @one_line_errors
    def delete(
        name: str, version: int | None, yes: bool, config: Path | None, endpoint: str | None
    ) -> None:
        """Delete a toolbox (every version) or one version (never the default one)."""
        what = f"toolbox {name}" + (f" version {version}" if version is not None else "")
        if not yes:
            click.confirm(f"delete {what}?", abort=True)
        path = f"/toolboxes/{name}" + (f"/versions/{version}" if version is not None else "")
        with client_for(config, endpoint) as client:
            client.delete(path)
        click.echo(f"deleted {what}")

    add_label_commands(toolbox, "toolbox", "toolboxes")
    return toolbox


def register(cli: click.Group) -> None:
    cli.add_command(_toolbox_group())
