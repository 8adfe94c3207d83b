"""``cupola agent``: agents go through the HTTP API, so they work against any cupola server."""

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
from cupola.cli.manifests import load_agent_file
from cupola.cli.output import print_table, version_lines, when
from cupola.exceptions import NotFound


def _version_path(name: str, version: int | str | None) -> str:
    return f"/agents/{name}" if version is None else f"/agents/{name}/versions/{version}"


def get_version(client: CupolaClient, name: str, version: int | str | None) -> dict[str, Any]:
    """One version object: a number or a label (the latest when ``version`` is None)."""
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
    lines = version_lines(version, model=str(definition.get("model", "-")))
    for tool in definition.get("tools") or []:
        label = tool.get("name") or tool.get("server_label") or tool.get("type")
        if tool.get("type") != "function":
            label = f"{label} ({tool.get('type')})"
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
        """Create, inspect, label and delete versioned agents."""

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
        with client_for(config, endpoint) as client:
            for path in files:
                click.echo(apply_file(client, path))

    @agent.command("list")
    @connection_options
    @one_line_errors
    def list_agents(config: Path | None, endpoint: str | None) -> None:
        """List agents with their latest version."""
        with client_for(config, endpoint) as client:
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
    @click.option(
        "--version", help="Version number or label, e.g. 3 or prod (default: the latest)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the version object as JSON.")
    @connection_options
    @one_line_errors
    def show(
        name: str,
        version: str | None,
        as_json: bool,
        config: Path | None,
        endpoint: str | None,
    ) -> None:
        """Show one version of an agent."""
        with client_for(config, endpoint) as client:
            found = get_version(client, name, version)
        click.echo(json.dumps(found, indent=2) if as_json else _describe(found))

    @agent.command("versions")
    @click.argument("name")
    @connection_options
    @one_line_errors
    def versions(name: str, config: Path | None, endpoint: str | None) -> None:
        """List an agent's versions, newest first, with the labels pointing at each."""
        with client_for(config, endpoint) as client:
            found = client.list_all(f"/agents/{name}/versions", order="desc")
            labels = labels_by_version(client, "agents", name)
        rows = [
            [
                str(v.get("version")),
                ", ".join(labels.get(str(v.get("version")), [])) or "-",
                str((v.get("definition") or {}).get("model", "-")),
                when(v.get("created_at")),
                str(v.get("description") or ""),
            ]
            for v in found
        ]
        print_table(
            ["VERSION", "LABELS", "MODEL", "CREATED", "DESCRIPTION"],
            rows,
            f"agent {name} has no versions",
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
        with client_for(config, endpoint) as client:
            client.delete(_version_path(name, version))
        click.echo(f"deleted {what}")

    add_label_commands(agent, "agent", "agents")
    return agent


def register(cli: click.Group) -> None:
    cli.add_command(_agent_group())
