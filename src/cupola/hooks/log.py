"""The default hook: one structured log line per model call."""

from __future__ import annotations

import logging

import orjson

from cupola.exceptions import CupolaError
from cupola.hooks.base import RunHooks
from cupola.hooks.records import ModelCall, ModelEnd

models_log = logging.getLogger("cupola.models")
"""One line per model call: what the wrappers did (see :class:`ModelCallLog`)."""


class ModelCallLog(RunHooks):
    """The structured log line of each model call (logger ``cupola.models``): WARNING when
    it failed, INFO when the wrappers did something (a retry, a fallback, a route, a changed
    parameter), DEBUG for a plain call (the response itself tells all of it; a line per
    request at INFO cost a fifth of the server's throughput under load)."""

    async def on_model_end(self, call: ModelCall, end: ModelEnd) -> None:
        finish, error = end.finish, end.error
        if finish is not None:
            report = finish.report
            notable = bool(
                report.attempts > 1 or report.failed_over or report.adjustments or report.route
            )
            level = logging.INFO if notable else logging.DEBUG
        elif isinstance(error, CupolaError):
            level = logging.WARNING
        else:  # an unexpected exception: the runner logs it with its traceback
            return
        if not models_log.isEnabledFor(level):
            return
        line: dict[str, object] = {
            "event": "model_call",
            "response_id": call.run.response_id,
            "model": call.run.model,
            "ms": round(end.ms, 3),
        }
        if finish is not None:
            line["finish_reason"] = finish.reason
            line["usage"] = {
                "input": finish.usage.input_tokens,
                "output": finish.usage.output_tokens,
            }
            line["report"] = finish.report.as_dict()
        elif isinstance(error, CupolaError):
            line["error"] = {"type": error.error_type, "code": error.code, "message": error.message}
        models_log.log(level, "%s", orjson.dumps(line).decode())
