"""The ``code_interpreter`` tool: the model writes Python, the server runs it in a container.

Each call runs in a fresh, rlimited process (see :mod:`cupola.tools.sandbox`) whose working
directory is the container of the conversation (or of the response, outside a conversation,
or the one the tool entry names). Files persist there between calls and are served by
``/containers/{id}/files``. The call is recorded as a ``code_interpreter_call`` item with the
snippet's logs; a limit that stops a snippet makes the item ``failed`` with the reason in its
logs, and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import orjson

from cupola.domain.records import Item
from cupola.exceptions import ToolError, UserError
from cupola.ids import new_id
from cupola.models.base import FunctionSpec, ToolCall
from cupola.secrets import redact
from cupola.settings import CodeInterpreterSettings
from cupola.tools.base import Rendered, ToolContext, Toolset
from cupola.tools.bubblewrap import Jail, probe, proven
from cupola.tools.sandbox import CONTAINER_ID, Container, Limits, container_id_for, run_python

log = logging.getLogger("cupola.tools.code_interpreter")

TOOL_TYPE = "code_interpreter"
FUNCTION_NAME = "code_interpreter"
_MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
_OPTIONAL: dict[str, type] = {
    "name": str,
    "description": str,
    "allowed_callers": list,
    "tool_configs": dict,
}
"""Foundry's fields of a code interpreter entry (a toolbox names its entries): kept as sent."""
_KIND_NAMES: dict[type, str] = {str: "string", list: "list", dict: "JSON object"}
_DESCRIPTION = (
    "Run Python 3 code and return what it prints. Each call starts a fresh process: "
    "variables do not carry over, but files written to the current directory do. "
    "The value of a final expression is printed, as in a notebook. Use print() to see "
    "results; save files (plots, CSV) to the current directory for the user to download."
)
_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
    "additionalProperties": False,
}


class FileSource(Protocol):
    """Where a tool entry's ``container.file_ids`` come from (the ``/files`` store)."""

    async def read_file(self, project: str, file_id: str) -> tuple[str, bytes]:
        """The file's name and content; raises NotFound."""
        ...


def _bad(where: str, message: str) -> UserError:
    return UserError(f"{where}{message}", param=where, code="invalid_value")


def _normalize_auto(raw: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(raw) - {"type", "file_ids", "memory_limit", "network_policy"}
    if unknown:
        raise _bad(where, f" has unknown field {sorted(unknown)[0]!r}")
    container: dict[str, Any] = {"type": "auto"}
    file_ids = raw.get("file_ids")
    if file_ids is not None:
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise _bad(f"{where}.file_ids", " must be a list of file ids")
        container["file_ids"] = list(file_ids)
    memory = raw.get("memory_limit")
    if memory is not None:
        if memory not in _MEMORY_LIMITS:
            raise _bad(f"{where}.memory_limit", f" must be one of {', '.join(_MEMORY_LIMITS)}")
        container["memory_limit"] = memory
    return container


def normalize_code_interpreter_tool(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a ``{"type": "code_interpreter", "container"?: ...}`` tool entry and return
    its echoed shape. ``container`` is ``{"type": "auto", "file_ids"?, "memory_limit"?}``
    (the default) or the id of a container of this project (``cntr_...``); Foundry's
    ``name``, ``description``, ``allowed_callers`` and ``tool_configs`` are echoed when given.

    ``memory_limit`` is accepted for compatibility; the server's
    ``code_interpreter.memory_mb`` setting is what applies."""
    if raw.get("type") != TOOL_TYPE:
        raise _bad(f"{where}.type", " must be 'code_interpreter'")
    unknown = set(raw) - {"type", "container", *_OPTIONAL}
    if unknown:
        raise _bad(where, f" has unknown field {sorted(unknown)[0]!r}")
    extras: dict[str, Any] = {}
    for key, kind in _OPTIONAL.items():
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise _bad(f"{where}.{key}", f" must be a {_KIND_NAMES[kind]}")
        extras[key] = value
    container = raw.get("container")
    at = f"{where}.container"
    if container is None:
        echoed: str | dict[str, Any] = {"type": "auto"}
    elif isinstance(container, str):
        if not CONTAINER_ID.match(container):
            raise _bad(at, " must be a container id (cntr_...) or {'type': 'auto'}")
        echoed = container
    elif isinstance(container, dict) and container.get("type") == "auto":
        echoed = _normalize_auto(container, at)
    else:
        raise _bad(at, " must be a container id (cntr_...) or {'type': 'auto'}")
    return {"type": TOOL_TYPE, "container": echoed, **extras}


def container_for(tool: dict[str, Any], ctx: ToolContext) -> str:
    """The container a call runs in: the one the tool entry names, else the conversation's,
    else the response's."""
    named = tool.get("container")
    if isinstance(named, str):
        return named
    return container_id_for(ctx.conversation_id or ctx.response_id)


def _code_from(arguments: str) -> str:
    """The snippet from a call's arguments: ``{"code": ...}``; a JSON string is the code, and
    anything else that is not an object is taken as Python itself (some models send raw
    Python)."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict):
        code = parsed.get("code", parsed.get("input"))
        if isinstance(code, str):
            return code
        raise UserError('the arguments must be {"code": "<python source>"}')
    if isinstance(parsed, str):
        return parsed
    return arguments  # a bare number or list is Python too


def _safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    return base if base not in ("", ".", "..") else "file"


_REMEDY = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or set "
    "code_interpreter.bwrap to its path; code_interpreter.unsafe_without_sandbox: true runs "
    "snippets unsandboxed, as the server's user, which is unsafe"
)


class SandboxUnavailable(ToolError):
    """No sandbox can run snippets here, and running them unsandboxed is not allowed."""


async def _jail(settings: CodeInterpreterSettings, data_dir: Path) -> tuple[Jail | None, str]:
    """The jail of ``settings`` if it works here (probed once per process), else why not."""
    jail = Jail.build(settings.bwrap, [data_dir])
    if jail is None:
        return None, f"bubblewrap ({settings.bwrap!r}) is not installed"
    problem = None if proven(jail) else await asyncio.to_thread(probe, jail)
    return (jail, "") if problem is None else (None, problem)


async def sandbox_for(settings: CodeInterpreterSettings, data_dir: Path) -> Jail | None:
    """The jail snippets run in; None (run unsandboxed) only when there is none and
    ``unsafe_without_sandbox`` is on. Raises :class:`SandboxUnavailable` otherwise."""
    jail, problem = await _jail(settings, data_dir)
    if jail is not None:
        return jail
    if settings.unsafe_without_sandbox:
        return None
    raise SandboxUnavailable(
        f"the code interpreter cannot run code: no sandbox ({problem}). To fix it, {_REMEDY}"
    )


async def check_sandbox(settings: CodeInterpreterSettings, data_dir: Path) -> bool:
    """At start-up: say (in the log) whether snippets will be sandboxed; True when they are."""
    jail, problem = await _jail(settings, data_dir)
    if jail is not None:
        log.debug("code_interpreter: snippets run in a bubblewrap sandbox")
        return True
    if settings.unsafe_without_sandbox:
        log.warning(
            "code_interpreter: UNSAFE: %s, and unsafe_without_sandbox is on, so snippets run "
            "unsandboxed with the server's files, environment and network",
            problem,
        )
    else:
        log.warning("code_interpreter: calls will fail: %s. To fix it, %s", problem, _REMEDY)
    return False


class CodeInterpreterToolset(Toolset):
    """The ``code_interpreter`` tool of one response."""

    label = TOOL_TYPE

    def __init__(
        self,
        tool: dict[str, Any],
        settings: CodeInterpreterSettings,
        files: FileSource | None = None,
    ):
        """``tool`` is the entry as :func:`normalize_code_interpreter_tool` returns it."""
        self.tool = tool
        self.settings = settings
        self.limits = Limits.from_settings(settings)
        self._files = files

    def functions(self) -> list[FunctionSpec]:
        return [FunctionSpec(name=FUNCTION_NAME, description=_DESCRIPTION, parameters=_PARAMETERS)]

    def container(self, ctx: ToolContext) -> Container:
        """This call's container, created on first use."""
        container_id = container_for(self.tool, ctx)
        name = ctx.conversation_id or ctx.response_id
        return Container.ensure(ctx.data_dir, ctx.project, container_id, name)

    async def start(self, ctx: ToolContext) -> list[Item]:
        """Copy the entry's ``file_ids`` into the container (once; existing files stay)."""
        container = self.tool.get("container")
        file_ids = container.get("file_ids") if isinstance(container, dict) else None
        if not file_ids or self._files is None:
            return []
        box = await asyncio.to_thread(self.container, ctx)
        for file_id in file_ids:
            name, content = await self._files.read_file(ctx.project, file_id)
            target = box.workdir / _safe_name(name)
            if not target.exists() and not target.is_symlink():
                await asyncio.to_thread(target.write_bytes, content)
        return []

    async def run(self, call: ToolCall, ctx: ToolContext, **extra: Any) -> Item:
        """Run the snippet; the item is ``failed`` (reason in the logs) when a limit stopped
        it or its arguments were unusable."""
        item: Item = {
            "id": new_id("ci"),
            "type": "code_interpreter_call",
            "status": "completed",
            "code": None,
            "container_id": container_for(self.tool, ctx),
            "outputs": [],
        }
        try:
            item["code"] = code = _code_from(call.arguments)
            jail = await sandbox_for(self.settings, ctx.data_dir)
            box = await asyncio.to_thread(self.container, ctx)
            result = await run_python(code, box, self.limits, jail)
        except (UserError, SandboxUnavailable) as exc:
            return _failed(item, exc.message)
        except OSError as exc:
            return _failed(item, f"could not run the code: {exc}")
        # Defence in depth: a secret value this server has decrypted never leaves in the logs.
        outputs: list[dict[str, Any]] = [{"type": "logs", "logs": redact(result.logs)}]
        for changed in result.changed:
            if changed.path.lower().endswith(".png"):
                outputs.append({"type": "image", "url": image_url(box.id, changed.id)})
        item["status"] = result.status
        item["outputs"] = outputs
        return item


def _failed(item: Item, reason: str) -> Item:
    item["status"] = "failed"
    item["outputs"] = [{"type": "logs", "logs": reason}]
    return item


def image_url(container_id: str, file_id: str) -> str:
    """Where a container file is downloaded (on the server root; ``/v1`` serves the project)."""
    return f"/v1/containers/{container_id}/files/{file_id}/content"


def render_code_interpreter_call(item: Item) -> Rendered:
    """A ``code_interpreter_call`` as the model sees it in history: a call of the
    ``code_interpreter`` function with ``{"code"}``, and the logs it produced."""
    code = item.get("code") or ""
    call = ToolCall(
        call_id=str(item.get("id") or "ci"),
        name=FUNCTION_NAME,
        arguments=orjson.dumps({"code": code}).decode(),
    )
    outputs = [out for out in item.get("outputs") or [] if isinstance(out, dict)]
    logs = [str(out.get("logs") or "") for out in outputs if out.get("type") == "logs"]
    images = sum(1 for out in outputs if out.get("type") == "image")
    text = "".join(logs).rstrip("\n")
    if images:
        text += f"\n[{images} image(s) saved in the container]"
    if item.get("status") == "failed" and not text:
        text = "the code interpreter failed"
    return Rendered(call=call, output=text or "(no output)")
