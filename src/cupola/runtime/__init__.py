"""The agent loop: history -> model -> items, streamed as Responses events."""

from cupola.runtime.request import CreateResponse
from cupola.runtime.runner import Runner

__all__ = ["CreateResponse", "Runner"]
