"""Served names of namespace functions: what the model sees, unique and within 64 characters."""

from __future__ import annotations

from cupola.tools.base import valid_function_name
from cupola.tools.namespace import served_name


def test_a_function_of_a_namespace_is_served_as_namespace__name() -> None:
    assert served_name("multi_agent_v1", "close_agent") == "multi_agent_v1__close_agent"
    assert served_name(None, "exec_command") == "exec_command"


def test_long_served_names_stay_valid_and_distinct() -> None:
    space = "n" * 64
    first, second = served_name(space, "f" * 64), served_name(space, "f" * 63 + "g")
    assert len(first) == len(second) == 64
    assert valid_function_name(first) and valid_function_name(second)
    assert first != second
    assert served_name(space, "f" * 64) == first  # the same name every time
