"""Run hooks: the interface features implement to act around every run (tracing, metrics,
guardrails, evaluation capture), and the dispatcher the runtime calls.

This package sits between the features and ``tools`` in the layers (docs/architecture.md):
features subclass :class:`RunHooks` without importing the runtime, and the runtime calls
them through :class:`Hooks`.
"""

from cupola.hooks.base import NO_HOOKS, Hooks, RunHooks, RunStopped
from cupola.hooks.log import ModelCallLog, models_log
from cupola.hooks.records import Api, ModelCall, ModelEnd, RunEnd, RunInfo, ToolRun

__all__ = [
    "NO_HOOKS",
    "Api",
    "Hooks",
    "ModelCall",
    "ModelCallLog",
    "ModelEnd",
    "RunEnd",
    "RunHooks",
    "RunInfo",
    "RunStopped",
    "ToolRun",
    "models_log",
]
