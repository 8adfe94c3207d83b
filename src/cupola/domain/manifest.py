"""Agent files: the YAML an engineer keeps in a repo and applies (``cupola agent apply``).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cupola.domain.agents import check_agent_name
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
