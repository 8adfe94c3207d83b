"""Typed settings: ``cupola.yaml`` plus ``CUPOLA_*`` environment overrides (the only place
the environment is read); see core.py."""

from cupola.settings.core import (
    CONFIG_FILE,
    DEFAULT_CONFIG,
    ENV_PREFIX,
    AuthSettings,
    CircuitBreakerConfig,
    CodeInterpreterSettings,
    DeploymentConfig,
    RouteConfig,
    RouterConfig,
    ScriptStep,
    ServerSettings,
    Settings,
    ToolSettings,
    find_config,
    is_loopback_host,
    load_settings,
)
from cupola.settings.mcp import McpApprovalPolicy, McpServerConfig, McpToolFilter
from cupola.settings.telemetry import TelemetrySettings, otlp_from_env

__all__ = [
    "AuthSettings",
    "CircuitBreakerConfig",
    "ENV_PREFIX",
    "ServerSettings",
    "find_config",
    "McpApprovalPolicy",
    "McpToolFilter",
    "otlp_from_env",
    "CONFIG_FILE",
    "CodeInterpreterSettings",
    "DEFAULT_CONFIG",
    "DeploymentConfig",
    "McpServerConfig",
    "RouteConfig",
    "RouterConfig",
    "ScriptStep",
    "Settings",
    "TelemetrySettings",
    "ToolSettings",
    "is_loopback_host",
    "load_settings",
]
