"""The web console: server-rendered pages over the same API the SDKs call, mounted at
``/console`` by the server (``with_console``)."""

from cupola.console.app import CONSOLE_PREFIX, ConsoleConfig, with_console

__all__ = ["CONSOLE_PREFIX", "ConsoleConfig", "with_console"]
