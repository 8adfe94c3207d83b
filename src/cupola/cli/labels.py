"""Label commands shared by ``cupola agent`` and ``cupola toolbox``: a label points a name at
one version (``prod``, ``staging`` ...; a toolbox's ``default``), and promotion moves it.

``label NAME VERSION LABEL`` sets or moves a label, ``unlabel NAME LABEL`` removes it,
``labels NAME`` lists them (``--history`` shows every move, for audit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cupola.cli.client import CupolaClient, client_for, connection_options, one_line_errors
from cupola.cli.output import print_table, when
from cupola.exceptions import NotFound


def labels_by_version(client: CupolaClient, collection: str, name: str) -> dict[str, list[str]]:
    """Version number (as a string) to the labels pointing at it, for ``versions`` tables."""
    found: dict[str, Any] = client.get(f"/{collection}/{name}/labels")
    out: dict[str, list[str]] = {}
    for label in found.get("data") or []:
        out.setdefault(str(label.get("version")), []).append(str(label.get("label")))
    return out


def _current(client: CupolaClient, collection: str, name: str, label: str) -> str | None:
    try:
        found: dict[str, Any] = client.get(f"/{collection}/{name}/labels/{label}")
    except NotFound:
        return None
    return str(found.get("version"))


def set_label(
    client: CupolaClient, noun: str, collection: str, name: str, version: int, label: str
) -> str:
    """Point ``label`` at ``version``; a line saying what changed."""
    before = _current(client, collection, name, label)
    after = client.request(
        "PUT", f"/{collection}/{name}/labels/{label}", json={"version": str(version)}
    )["version"]
    if before == after:
        return f"{noun} {name} label {label} -> version {after} (unchanged)"
    was = f"was version {before}" if before is not None else "new label"
    return f"{noun} {name} label {label} -> version {after} ({was})"


def add_label_commands(group: click.Group, noun: str, collection: str) -> None:
    """``label``, ``unlabel`` and ``labels`` on ``group``, for resources under
    ``/{collection}``."""

    @group.command("label")
    @click.argument("name")
    @click.argument("version", type=int)
    @click.argument("label")
    @connection_options
    @one_line_errors
    def label_cmd(
        name: str, version: int, label: str, config: Path | None, endpoint: str | None
    ) -> None:
        """Point LABEL (e.g. prod) at VERSION of NAME: set it, or move it from where it was.
        References that name the label use VERSION from now on."""
        with client_for(config, endpoint) as client:
            click.echo(set_label(client, noun, collection, name, version, label))

    @group.command("unlabel")
    @click.argument("name")
    @click.argument("label")
    @connection_options
    @one_line_errors
    def unlabel(name: str, label: str, config: Path | None, endpoint: str | None) -> None:
        """Remove LABEL from NAME (the versions stay)."""
        with client_for(config, endpoint) as client:
            before = _current(client, collection, name, label)
            client.delete(f"/{collection}/{name}/labels/{label}")
        click.echo(f"{noun} {name} label {label} removed (was version {before})")

    @group.command("labels")
    @click.argument("name")
    @click.option("--history", is_flag=True, help="Every move of the labels, newest first.")
    @click.option("--label", "only", help="With --history: the moves of this label only.")
    @connection_options
    @one_line_errors
    def labels(
        name: str, history: bool, only: str | None, config: Path | None, endpoint: str | None
    ) -> None:
        """List NAME's labels and the version each points at (latest is implicit)."""
        with client_for(config, endpoint) as client:
            if history:
                params: dict[str, Any] = {"order": "desc"}
                if only:
                    params["label"] = only
                moves = client.list_all(f"/{collection}/{name}/label_history", **params)
                rows = [
                    [
                        when(m.get("created_at")),
                        str(m.get("label")),
                        str(m.get("previous_version") or "-"),
                        str(m.get("version") or "(removed)"),
                    ]
                    for m in moves
                ]
                print_table(["WHEN", "LABEL", "FROM", "TO"], rows, f"no label moves for {name}")
                return
            found = client.get(f"/{collection}/{name}/labels").get("data") or []
            resource: dict[str, Any] = client.get(f"/{collection}/{name}")
        latest = str(((resource.get("versions") or {}).get("latest") or {}).get("version", "-"))
        rows = [[str(x["label"]), str(x["version"]), when(x.get("updated_at"))] for x in found]
        rows.append(["latest", latest, "(implicit: the highest version)"])
        print_table(["LABEL", "VERSION", "SET"], rows, "")
