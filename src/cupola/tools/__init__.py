"""Tools an agent can use. Function tools are run by the client; server-side tools follow."""

from cupola.tools.function import function_specs, normalize_tools

__all__ = ["function_specs", "normalize_tools"]
