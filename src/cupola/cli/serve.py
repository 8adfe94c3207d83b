"""``cupola init`` and ``cupola serve``."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
import yaml

from cupola.cli.manifests import load_agent_file, load_toolbox_file
from cupola.exceptions import CupolaError
from cupola.settings import CONFIG_FILE, DEFAULT_CONFIG, load_settings

if TYPE_CHECKING:
    from cupola.server.services import Services


def _is_toolbox_file(path: Path) -> bool:
    """A toolbox file has ``tools`` and no agent ``definition``."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False  # the agent loader reports the problem
    return isinstance(data, dict) and "tools" in data and "definition" not in data


async def _apply_toolbox(services: Services, path: Path) -> str:
    manifest = load_toolbox_file(path)
    version, created = await services.toolboxes.create_version(
        services.settings.project,
        manifest.name,
        manifest.tools,
        description=manifest.description,
        metadata=manifest.metadata,
        may_start_processes=True,  # an admin's files, applied by whoever starts the server
    )
    state = "created" if created else "unchanged"
    return f"toolbox {manifest.name} version {version.version} ({state})"


async def _apply_agent(services: Services, path: Path) -> str:
    manifest = load_agent_file(path)
    version, created = await services.agents.create_version(
        services.settings.project,
        manifest.name,
        manifest.definition,
        description=manifest.description,
        metadata=manifest.metadata,
        may_start_processes=True,
    )
    state = "created" if created else "unchanged"
    return f"agent {manifest.name} version {version.version} ({state})"


async def _apply_all(services: Services, files: tuple[Path, ...]) -> list[str]:
    toolboxes = [p for p in files if _is_toolbox_file(p)]
    agents = [p for p in files if p not in toolboxes]
    lines = []
    for path, apply in [(p, _apply_toolbox) for p in toolboxes] + [
        (p, _apply_agent) for p in agents
    ]:
        try:
            lines.append(await apply(services, path))
        except CupolaError as exc:
            where = f" ({exc.param})" if exc.param else ""
            message = exc.message if exc.message.startswith(str(path)) else f"{path}: {exc.message}"
            raise click.ClickException(f"{message}{where}") from None
    return lines


def apply_files(services: Services, files: tuple[Path, ...]) -> list[str]:
    """Apply toolbox and agent files before the server starts (toolboxes first, so agents
    can name them), through the same services the API uses: a file is refused for what the
    API refuses (a bad definition, a deployment or toolbox that does not exist), with one
    line naming the file and the field. They are an admin's files: their tools may start
    processes. Files before a refused one stay applied."""
    return asyncio.run(_apply_all(services, files))


def _announcer(log_format: str) -> Callable[[str], None]:
    """How ``serve`` tells what it did: a plain line, or a log record when the log is JSON
    (so every line of the output is a JSON object)."""
    if log_format == "json":
        return logging.getLogger("cupola.serve").info
    return click.echo


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--force", is_flag=True, help="Overwrite an existing cupola.yaml.")
    def init(force: bool) -> None:
        """Write a cupola.yaml in the current directory."""
        path = Path.cwd() / CONFIG_FILE
        if path.exists() and not force:
            raise click.ClickException(f"{path} exists (use --force to overwrite)")
        path.write_text(DEFAULT_CONFIG)
        click.echo(f"wrote {path}")
        click.echo(
            "Its default model, local-small, is SmolLM2-135M run in process: enough to try "
            "cupola (short replies, picking one clearly named tool), not for real work. To "
            "use a bigger GGUF file, an Ollama or a vLLM server, edit local-small in "
            f"{CONFIG_FILE} (one line each, shown there; see docs/models.md)."
        )

    @cli.command()
    @click.option("--config", "config", type=click.Path(path_type=Path), help="cupola.yaml to use.")
    @click.option("--host", help="Address to bind (default from config: 127.0.0.1).")
    @click.option("--port", type=int, help="Port (default from config: 8765).")
    @click.option(
        "--apply",
        "apply",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Agent or toolbox file to apply before serving (repeatable).",
    )
    @click.option(
        "--tls-cert", type=click.Path(exists=True), help="Serve HTTPS with this certificate."
    )
    @click.option("--tls-key", type=click.Path(exists=True), help="Private key for --tls-cert.")
    @click.option("--log-level", default="info", show_default=True)
    @click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        help="text, or one JSON object per line (default: server.log_format, text).",
    )
    @click.option(
        "--access-log/--no-access-log",
        default=None,
        help="One line per request on the cupola.access logger (default: server.access_log, on).",
    )
    def serve(
        config: Path | None,
        host: str | None,
        port: int | None,
        apply: tuple[Path, ...],
        tls_cert: str | None,
        tls_key: str | None,
        log_level: str,
        log_format: Literal["text", "json"] | None,
        access_log: bool | None,
    ) -> None:
        """Serve the Foundry and OpenAI APIs."""
        import uvicorn

        from cupola.server.app import build_services, create_app
        from cupola.server.logs import configure_logging

        settings = load_settings(config)
        if host:
            settings.server.host = host
        if port is not None:
            settings.server.port = port
        if access_log is not None:
            settings.server.access_log = access_log
        if log_format is not None:
            settings.server.log_format = log_format
        if bool(tls_cert) != bool(tls_key):
            raise click.ClickException("--tls-cert and --tls-key go together")
        # one handler for every logger, uvicorn's too: each line names its request and trace
        configure_logging(log_level, settings.server.log_format)
        services = build_services(settings)
        services.models.build_all()
        services.store.migrate()
        say = _announcer(settings.server.log_format)
        for line in apply_files(services, apply):
            say(line)
        app = create_app(settings, services)
        scheme = "https" if tls_cert else "http"
        say(
            f"cupola serving project {settings.project!r} at "
            f"{scheme}://{settings.server.host}:{settings.server.port}/api/projects/{settings.project}"
        )
        gc.collect()
        gc.freeze()  # start-up objects never need collecting: keeps GC pauses to milliseconds
        uvicorn.run(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_level=log_level,
            log_config=None,  # uvicorn's records reach the handler above, in the same format
            access_log=False,  # cupola's own access log (server.access_log) replaces it
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_graceful_shutdown=5,
        )
