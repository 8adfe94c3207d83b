"""The run hooks, as the runtime has always imported them: a re-export of
:mod:`cupola.hooks` (where the interface lives, so features can implement it without
importing the runtime)."""

from cupola.hooks import (
    NO_HOOKS,
    Api,
    Hooks,
    ModelCall,
    ModelCallLog,
    ModelEnd,
    RunEnd,
    RunHooks,
    RunInfo,
    RunStopped,
    ToolRun,
    models_log,
)
from cupola.hooks.base import log

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
    "log",
    "models_log",
]
