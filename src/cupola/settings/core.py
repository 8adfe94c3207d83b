"""Typed settings: ``cupola.yaml`` plus ``CUPOLA_*`` environment overrides.

This is the only module that reads the environment. ``${VAR}`` (or ``${VAR:-default}``) in
any string of cupola.yaml expands from the environment when the file is loaded; then
``CUPOLA_<FIELD>`` overrides a top-level field and ``CUPOLA_<SECTION>__<FIELD>`` a nested one
(``CUPOLA_DATABASE_URL``, ``CUPOLA_SERVER__PORT``, ``CUPOLA_AUTH__REQUIRED``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from cupola.exceptions import ConfigError
from cupola.settings.mcp import McpServerConfig
from cupola.settings.section import Section as _Section
from cupola.settings.telemetry import TelemetrySettings, otlp_from_env

CONFIG_FILE = "cupola.yaml"
ENV_PREFIX = "CUPOLA_"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_LABEL = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$")


class ScriptStep(_Section):
    """One canned reply of a scripted deployment, chosen when ``match`` fits the last input."""

    match: str | None = None
    """A regular expression searched in the last input message (user text or tool output);
    None matches anything."""
    reply: str | None = None
    """The assistant's text."""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """Calls to make instead of (or before) replying: ``{"name": ..., "arguments": {...}}``."""


class CircuitBreakerConfig(_Section):
    """Stop sending to a deployment that keeps failing, and try it again later."""

    failures: int = Field(default=5, ge=1)
    """Consecutive failed calls that open the circuit."""
    reset_seconds: float = Field(default=30.0, gt=0)
    """How long an open circuit refuses calls before letting one through to probe."""


class RouteConfig(_Section):
    """One deployment a model-router may pick, and what the policy knows of it."""

    deployment: str
    cost_per_1k_tokens: float = Field(default=0.0, ge=0)
    """Price of a thousand tokens (input and output alike), in any currency unit."""
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    """The largest prompt (estimated tokens) this deployment should be given."""
    tier: Literal["simple", "complex", "any"] = "any"
    """Which prompts it suits under the ``complexity`` policy."""


class RouterConfig(_Section):
    """How a ``router`` deployment picks one of its routes per request."""

    policy: Literal["cost", "latency", "complexity"] = "cost"
    """``cost``: the cheapest route whose ``max_prompt_tokens`` fits the prompt;
    ``latency``: the route with the lowest recent latency (untried routes first);
    ``complexity``: ``simple`` routes for short, plain prompts, ``complex`` ones otherwise."""
    routes: list[RouteConfig] = Field(default_factory=list, min_length=1)
    complexity_threshold_tokens: int = Field(default=1000, ge=1)
    """``complexity``: prompts longer than this (estimated tokens), or with tools or a JSON
    schema, count as complex."""


class DeploymentConfig(_Section):
    """A named model deployment: which provider serves it and how to reach it."""

    name: str
    """The name agents and requests use (``model: local-small``)."""
    provider: Literal[
        "embedded", "scripted", "openai", "azure_openai", "foundry_agent", "anthropic", "router"
    ]
    """``embedded`` (local llama.cpp), ``scripted`` (deterministic), ``openai`` (any
    OpenAI-compatible Chat Completions server: OpenAI, vLLM, Ollama, llama.cpp server),
    ``azure_openai`` (an Azure OpenAI / Foundry model deployment), ``foundry_agent`` (a remote
    Foundry agent), ``anthropic`` (the Messages API), ``router`` (picks one of ``router.routes``
    per request)."""
    model: str | None = None
    """The upstream model name (openai) or the GGUF file path (embedded, optional)."""
    base_url: str | None = None
    """The upstream API root, e.g. ``https://api.openai.com/v1`` (openai)."""
    api_key: SecretStr | None = None
    """The upstream key; write ``${OPENAI_API_KEY}`` rather than a literal."""
    timeout: float = 120.0
    """Seconds to wait for an upstream reply (openai)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent upstream (openai)."""
    mode: Literal["echo", "script"] = "echo"
    """scripted: ``echo`` renders the input it received; ``script`` plays ``script``."""
    script: list[ScriptStep] = Field(default_factory=list)
    """scripted: canned replies, the first whose ``match`` fits is used; a request none fits
    fails (code ``script_mismatch``): end with a step without ``match`` for a catch-all."""
    context_size: int = 4096
    """embedded: the context window in tokens."""
    threads: int | None = None
    """embedded: CPU threads (default: all cores)."""
    max_output_tokens: int = 512
    """embedded: the cap on generated tokens when a request sets none."""
    publisher: str | None = None
    """Shown as ``modelPublisher`` by the deployments API."""
    input_price_per_million: float | None = Field(default=None, ge=0)
    """Estimated cost: US dollars per million input tokens this deployment serves
    (``cupola_cost_usd_total`` in ``/metrics``); unset counts its input tokens as free."""
    output_price_per_million: float | None = Field(default=None, ge=0)
    """Estimated cost: US dollars per million output tokens (reasoning tokens included)."""

    # -- azure_openai, foundry_agent, anthropic -------------------------------------------
    endpoint: str | None = None
    """azure_openai: the resource endpoint (``https://RES.openai.azure.com`` or
    ``https://RES.services.ai.azure.com``); foundry_agent: the project endpoint
    (``https://RES.services.ai.azure.com/api/projects/PROJECT``); anthropic: the API root
    (default ``https://api.anthropic.com``; a Foundry resource's is
    ``https://RES.services.ai.azure.com/anthropic``)."""
    api_version: str | None = None
    """azure_openai: the ``api-version`` (e.g. ``2025-03-01-preview``); unset uses the v1 API
    (``/openai/v1``). anthropic: the ``anthropic-version`` header (default ``2023-06-01``)."""
    deployment: str | None = None
    """azure_openai: the Azure deployment name (default: ``model``, then ``name``)."""
    auth: Literal["key", "entra"] = "key"
    """``key``: ``api_key`` (or ``connection``); ``entra``: Microsoft Entra ID tokens from
    azure-identity's DefaultAzureCredential."""
    connection: str | None = None
    """A project connection (``cupola connections``) whose credential is used instead of
    ``api_key``."""
    agent: str | None = None
    """foundry_agent: the remote agent's name (``agent_version`` pins a version)."""
    agent_version: str | None = None

    # -- model-family compatibility (compat.py) -------------------------------------------
    family: Literal["auto", "reasoning", "legacy"] = "auto"
    """``auto`` detects it from the deployment (and model) name: GPT-5.x and o1/o3/o4 are
    reasoning models, everything else legacy."""
    unsupported_params: Literal["drop", "strict"] = "drop"
    """What a reasoning deployment does with parameters it does not take (temperature, top_p,
    penalties, logprobs, logit_bias, stop): ``drop`` them and report it, or reject the request
    (``strict``, HTTP 400)."""
    reasoning_token_scale: float = Field(default=2.5, gt=0)
    """Reasoning models: ``max_completion_tokens = max(max_tokens * scale, floor)``."""
    reasoning_token_floor: int = Field(default=4096, ge=1)
    developer_role: bool = False
    """Reasoning models: send system instructions in the ``developer`` role."""

    # -- resilience (resilience.py) -------------------------------------------------------
    retries: int = Field(default=2, ge=0)
    """Extra attempts after a failed one (429, 5xx, timeout, dropped or malformed reply)."""
    retry_backoff: float = Field(default=0.5, ge=0)
    """Seconds before the first retry; doubled each time (with jitter)."""
    max_retry_wait: float = Field(default=30.0, ge=0)
    """The longest wait between attempts, ``Retry-After`` included; a longer ``Retry-After``
    goes to the next fallback instead."""
    fallbacks: list[str] = Field(default_factory=list)
    """Deployments to try, in order, when this one still fails after its retries."""
    circuit_breaker: CircuitBreakerConfig | None = None
    router: RouterConfig | None = None
    """router: the routes and the policy."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a deployment name is 1-63 letters, digits, '_', '.' or '-'")
        return value


class ServerSettings(_Section):
    """Where and how the HTTP server listens."""

    host: str = "127.0.0.1"
    port: int = 8765
    max_body_bytes: int = 8 * 1024 * 1024
    """Requests with a larger body are refused with 413."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (``https://app.example.com``, exactly as the
    browser sends ``Origin``). Empty (the default) turns CORS off: every request carrying an
    ``Origin`` is refused with 403. ``CUPOLA_SERVER__CORS_ORIGINS`` takes a comma-separated
    list."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path or wildcard"
                )
            out.append(origin.lower())
        return out

    max_item_bytes: int = Field(default=1024 * 1024, ge=1024)
    """The largest output item (a message's text, a call's arguments) a response may
    generate; a model that writes more is stopped and the response ends ``incomplete``
    without that item."""
    access_log: bool = True
    """Log one line per request (method, path, status, milliseconds, request id) to the
    ``cupola.access`` logger at INFO."""
    log_format: Literal["text", "json"] = "text"
    """How ``cupola serve`` writes its log lines (``--log-format`` overrides): ``text``,
    ``LEVEL logger: message request_id=... trace_id=...``, or ``json``, one JSON object
    per line with ``time``, ``level``, ``logger``, ``message``, ``request_id`` and
    ``trace_id`` (and ``method``, ``path``, ``status``, ``duration_ms`` on access lines).
    Every line names the request it was written for and its trace (``-`` when none)."""


class AuthSettings(_Section):
    """API-key authentication."""

    required: Literal["auto", "always", "never"] = "auto"
    """``auto``: keys are required unless the server is bound to a loopback address."""
    key_cache_seconds: float = 5.0
    """How long a verified key is trusted without asking the database again: a revoked
    key stops working within this many seconds."""


class ToolSettings(_Section):
    """Outbound calls made by server-side tools (MCP servers over HTTP, OpenAPI tools)."""

    allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts tools may call: ``api.example.com``, ``*.example.com`` or ``host:port``.
    Everything else is refused (deny by default)."""
    allow_loopback: bool | None = None
    """Let tools call 127.0.0.0/8, ::1 and localhost. Unset (the default): only while the
    server needs no API keys (bound to loopback, for development), never once keys are
    required, so a request cannot reach services on the server's own machine. ``true`` or
    ``false`` decides it either way."""
    allow_commands: bool = True
    """Let stdio MCP servers (``command``) run. They come only from server-side
    definitions (toolboxes and agents created with the admin role, files applied by
    ``cupola serve --apply``), never from a request; ``false`` forbids local processes
    altogether."""
    timeout_seconds: float = 30.0
    """How long one outbound tool call may take."""
    max_response_bytes: int = 1024 * 1024
    """Larger tool responses are cut to this size and marked truncated."""


class CodeInterpreterSettings(_Section):
    """Limits of the ``code_interpreter`` tool's Python processes."""

    cpu_seconds: int = 10
    memory_mb: int = 512
    wall_seconds: float = 30.0
    max_output_bytes: int = 64 * 1024
    max_workdir_bytes: int = 64 * 1024 * 1024
    bwrap: str = "bwrap"
    """The bubblewrap executable that sandboxes each snippet (a name on PATH, or a path)."""
    unsafe_without_sandbox: bool = False
    """UNSAFE. When bubblewrap is missing or cannot run here, run snippets unsandboxed (as the
    server's user, seeing its files, environment and network) instead of refusing them."""


def _default_deployments() -> list[DeploymentConfig]:
    return [
        DeploymentConfig(name="local-small", provider="embedded"),
        DeploymentConfig(name="echo", provider="scripted", mode="echo"),
    ]


class Settings(_Section):
    """Everything cupola.yaml declares."""

    project: str = "default"
    """The project served at ``/api/projects/{project}`` and aliased at ``/v1``."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/cupola.db``. PostgreSQL:
    ``postgresql+psycopg://user@host/db``."""
    data_dir: Path = Path(".cupola")
    """Where the SQLite database and other local state live (relative to cupola.yaml)."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    deployments: list[DeploymentConfig] = Field(default_factory=_default_deployments)
    default_deployment: str | None = None
    """The deployment a request without ``model`` uses; default the first one listed."""
    tools: ToolSettings = Field(default_factory=ToolSettings)
    code_interpreter: CodeInterpreterSettings = Field(default_factory=CodeInterpreterSettings)
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    """MCP servers declared here, by name (the ``server_label`` requests, agents and toolboxes
    use): ``{"type": "mcp", "server_label": NAME}``. The only place besides admin-made
    toolboxes and agents a stdio server (``command``) may come from."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    secret_key: SecretStr | None = None
    """The key that encrypts connection secrets at rest (``CUPOLA_SECRET_KEY``, a Fernet key).
    When unset, ``secret_key_file`` holds it (created on first use)."""
    secret_key_file: Path = Path("secret.key")
    """Where the secrets key is kept when ``secret_key`` is unset (relative to data_dir)."""
    max_file_bytes: int = 32 * 1024 * 1024
    """The largest file ``/files`` accepts."""
    endpoint: str | None = None
    """The server URL the CLI talks to (``CUPOLA_ENDPOINT``); default
    ``http://{server.host}:{server.port}``."""
    api_key: SecretStr | None = None
    """The API key the CLI sends as ``Authorization: Bearer`` (``CUPOLA_API_KEY``)."""

    @field_validator("project")
    @classmethod
    def _valid_project(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a project name is 1-63 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _valid_server_names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name in value:
            if not _LABEL.match(name):
                raise ValueError(
                    f"MCP server name {name!r} must be 1-64 letters, digits, '_' or '-' "
                    "(it is the server_label requests use)"
                )
        return value

    @field_validator("deployments")
    @classmethod
    def _unique(cls, value: list[DeploymentConfig]) -> list[DeploymentConfig]:
        seen: set[str] = set()
        for dep in value:
            if dep.name in seen:
                raise ValueError(f"deployment {dep.name!r} is declared twice")
            seen.add(dep.name)
        for dep in value:
            _check_references(dep, seen)
        return value

    @property
    def keys_required(self) -> bool:
        """Whether requests need an API key: ``auth.required``, where ``auto`` means
        unless the server is bound to a loopback address."""
        mode = self.auth.required
        if mode == "auto":
            return not is_loopback_host(self.server.host)
        return mode == "always"

    @property
    def loopback_tools_allowed(self) -> bool:
        """``tools.allow_loopback`` resolved: unset follows :attr:`keys_required`."""
        if self.tools.allow_loopback is None:
            return not self.keys_required
        return self.tools.allow_loopback

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'cupola.db'}"

    @property
    def cli_endpoint(self) -> str:
        """The server root the CLI talks to: ``endpoint``, else the local ``server`` address
        (a wildcard bind address is reached on loopback)."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        host = self.server.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"

    @property
    def resolved_secret_key_file(self) -> Path:
        if self.secret_key_file.is_absolute():
            return self.secret_key_file
        return self.data_dir / self.secret_key_file

    def deployment(self, name: str) -> DeploymentConfig | None:
        for dep in self.deployments:
            if dep.name == name:
                return dep
        return None

    @property
    def default_model(self) -> str | None:
        if self.default_deployment:
            return self.default_deployment
        return self.deployments[0].name if self.deployments else None


def is_loopback_host(host: str) -> bool:
    """Whether a bind address or host name is this machine's loopback."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_references(dep: DeploymentConfig, names: set[str]) -> None:
    """Fallbacks and routes name other declared deployments; a router has routes."""
    where = f"deployment {dep.name!r}"
    for other in dep.fallbacks:
        if other not in names:
            raise ValueError(f"{where}: fallback {other!r} is not a declared deployment")
        if other == dep.name:
            raise ValueError(f"{where}: a deployment cannot be its own fallback")
    if dep.provider == "router":
        if dep.router is None:
            raise ValueError(f"{where}: a router needs router.routes")
        for route in dep.router.routes:
            if route.deployment not in names:
                raise ValueError(
                    f"{where}: route {route.deployment!r} is not a declared deployment"
                )
            if route.deployment == dep.name:
                raise ValueError(f"{where}: a router cannot route to itself")
    elif dep.router is not None:
        raise ValueError(f"{where}: router settings need provider: router")


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"cupola.yaml refers to ${{{name}}}, which is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == "CUPOLA_CONFIG":
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in Settings.model_fields or path[0] in ("deployments", "mcp_servers"):
            continue
        target = data
        for part in path[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"{key} overrides {part!r}, which is not a section")
            target = nested
        target[path[-1]] = raw


def find_config(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file: ``$CUPOLA_CONFIG``, else ``cupola.yaml`` in the working directory."""
    env = os.environ if env is None else env
    if env.get("CUPOLA_CONFIG"):
        return Path(env["CUPOLA_CONFIG"])
    candidate = (start or Path.cwd()) / CONFIG_FILE
    return candidate if candidate.exists() else None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read cupola.yaml (if any), expand ``${VAR}``, apply ``CUPOLA_*`` overrides, validate."""
    env = dict(os.environ) if env is None else dict(env)
    path = path or find_config(env=env)
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level")
        data = _expand(loaded, env)
        base = path.resolve().parent
    _apply_env_overrides(data, env)
    telemetry = data.setdefault("telemetry", {})
    if isinstance(telemetry, dict):
        for field, value in otlp_from_env(env).items():
            telemetry.setdefault(field, value)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        where = path or "the environment"
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {loc}: {first['msg']}") from None
    if not settings.data_dir.is_absolute():
        settings.data_dir = base / settings.data_dir
    for server in settings.mcp_servers.values():  # stdio servers run beside cupola.yaml
        if server.command is not None and (server.cwd is None or not server.cwd.is_absolute()):
            server.cwd = base / (server.cwd or Path())
    return settings


DEFAULT_CONFIG = """\
# cupola configuration. ${VAR} expands from the environment; CUPOLA_* variables override
# fields (CUPOLA_DATABASE_URL, CUPOLA_SERVER__PORT, ...). See docs/configuration.md.
project: default
# database_url: postgresql+psycopg://postgres@127.0.0.1:5432/cupola
server:
  host: 127.0.0.1
  port: 8765
deployments:
  # local-small: SmolLM2-135M, run in process. Enough to try cupola (short replies, one
  # clearly named tool); not for real work. For a bigger model, replace it with one of
  # (a bigger GGUF file, an Ollama server, a vLLM server):
  #- {name: local-small, provider: embedded, model: /models/qwen2.5-3b-instruct-q4_k_m.gguf}
  #- {name: local-small, provider: openai, base_url: http://127.0.0.1:11434/v1, model: qwen2.5:7b}
  #- {name: local-small, provider: openai, base_url: http://127.0.0.1:8000/v1, model: Qwen/Qwen3-8B}
  - name: local-small
    provider: embedded
  - name: echo               # deterministic, for tests and demos
    provider: scripted
    mode: echo
  # - name: gpt-4o
  #   provider: openai
  #   model: gpt-4o
  #   base_url: https://api.openai.com/v1
  #   api_key: ${OPENAI_API_KEY}
"""
