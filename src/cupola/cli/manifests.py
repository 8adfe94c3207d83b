"""Agent and toolbox files: the YAML an engineer keeps in a repo and applies
(``cupola agent apply``, ``cupola toolbox apply``, ``cupola serve --apply``).

An agent file:

```yaml
name: travel-concierge
description: Answers travel questions
metadata: {team: travel}
definition:
  kind: prompt
  model: local-small
  instructions_file: prompts/system.txt   # read relative to this file
  tools: [...]
```

A toolbox file:

```yaml
name: support-tools
description: Search, docs and GitHub for the support agents
metadata: {team: support}
tools:
  - type: mcp
    server_label: github
    server_url: https://api.githubcopilot.com/mcp
  - type: mcp
    server_label: notes
    command: [python, -m, notes_server]      # cupola extension: a stdio MCP server
  - type: openapi
    openapi: {name: weather, spec_file: specs/weather.yaml}   # read relative to this file
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cupola.domain.agents import check_agent_name
from cupola.domain.toolboxes import check_toolbox_name
from cupola.exceptions import UserError


@dataclass(frozen=True, slots=True)
class AgentManifest:
    name: str
    definition: dict[str, Any]
    description: str | None
    metadata: dict[str, str]

    def body(self) -> dict[str, Any]:
        """The ``create_version`` request body."""
        out: dict[str, Any] = {"definition": self.definition, "metadata": self.metadata}
        if self.description is not None:
            out["description"] = self.description
        return out


def load_agent_file(path: Path) -> AgentManifest:
    """Read and check an agent file; ``instructions_file`` is inlined."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: an agent file holds a mapping with name and definition")
    name = data.get("name")
    if not isinstance(name, str):
        raise UserError(f"{path}: 'name' is required")
    check_agent_name(name)
    definition = data.get("definition")
    if not isinstance(definition, dict):
        raise UserError(f"{path}: 'definition' must be a mapping")
    definition = dict(definition)
    instructions_file = definition.pop("instructions_file", None)
    if instructions_file is not None:
        if "instructions" in definition:
            raise UserError(f"{path}: give instructions or instructions_file, not both")
        try:
            definition["instructions"] = (path.parent / str(instructions_file)).read_text().strip()
        except OSError as exc:
            raise UserError(f"{path}: cannot read instructions_file: {exc.strerror}") from None
    definition.setdefault("kind", "prompt")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: 'metadata' must be a mapping of strings")
    description = data.get("description")
    return AgentManifest(
        name=name,
        definition=definition,
        description=str(description) if description is not None else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


@dataclass(frozen=True, slots=True)
class ToolboxManifest:
    name: str
    tools: list[dict[str, Any]]
    description: str | None
    metadata: dict[str, str]

    def body(self) -> dict[str, Any]:
        """The ``create_version`` request body."""
        out: dict[str, Any] = {"tools": self.tools, "metadata": self.metadata}
        if self.description is not None:
            out["description"] = self.description
        return out


def _read_structured(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{what}: cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{what}: {path} is not valid JSON or YAML: {exc}") from None


def _inline_spec_file(tool: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """An OpenAPI entry's ``openapi.spec_file`` read (relative to the toolbox file) into
    ``openapi.spec``."""
    spec = tool.get("openapi")
    if tool.get("type") != "openapi" or not isinstance(spec, dict) or "spec_file" not in spec:
        return tool
    spec = dict(spec)
    spec_file = spec.pop("spec_file")
    if "spec" in spec:
        raise UserError(f"{where}: give openapi.spec or openapi.spec_file, not both")
    spec["spec"] = _read_structured(base / str(spec_file), f"{where}.openapi.spec_file")
    return {**tool, "openapi": spec}


def _resolve_cwd(tool: dict[str, Any], base: Path) -> dict[str, Any]:
    """A stdio MCP entry's relative ``cwd`` is relative to the toolbox file."""
    cwd = tool.get("cwd")
    if tool.get("type") != "mcp" or not tool.get("command") or not isinstance(cwd, str):
        return tool
    if Path(cwd).is_absolute():
        return tool
    return {**tool, "cwd": str((base / cwd).resolve())}


def load_toolbox_file(path: Path) -> ToolboxManifest:
    """Read a toolbox file. Its shape is checked here; its tools are checked by the server
    (which may know more tool types and fields than this client)."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a toolbox file holds a mapping with name and tools")
    name = data.get("name")
    if not isinstance(name, str):
        raise UserError(f"{path}: 'name' is required")
    check_toolbox_name(name)
    tools = data.get("tools")
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise UserError(f"{path}: 'tools' must be a list of tool mappings")
    where = f"{path}: tools"
    tools = [
        _resolve_cwd(_inline_spec_file(t, path.parent, f"{where}[{i}]"), path.parent)
        for i, t in enumerate(tools)
    ]
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: 'metadata' must be a mapping of strings")
    description = data.get("description")
    return ToolboxManifest(
        name=name,
        tools=tools,
        description=str(description) if description is not None else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )
