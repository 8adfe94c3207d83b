"""How tools from several servers are named for the model (the agent loop) and for MCP
clients (the toolbox endpoint): one rule for both."""

from __future__ import annotations

from typing import Any

from cupola.domain.records import Item
from cupola.models.base import FunctionSpec, ToolCall
from cupola.runtime.tooling import ServerFunctions
from cupola.tools.base import ToolContext, Toolset


class Fixed(Toolset):
    """A toolset offering fixed function names."""

    def __init__(self, label: str, *names: str) -> None:
        self.label = label
        self.names = names

    def functions(self) -> list[FunctionSpec]:
        return [FunctionSpec(name) for name in self.names]

    async def run(self, call: ToolCall, ctx: ToolContext, **extra: Any) -> Item:
        return {"type": "mcp_call", "name": call.name}


def test_unique_names_stay_and_shared_ones_get_every_label() -> None:
    travel, concierge = (
        Fixed("travel", "get_weather", "get_hotel"),
        Fixed("concierge", "get_weather"),
    )
    offered = ServerFunctions([travel, concierge])
    assert [s.name for s in offered.specs] == [
        "travel__get_weather",
        "get_hotel",
        "concierge__get_weather",
    ]
    toolset, raw = offered.resolve(ToolCall("c1", "concierge__get_weather", "{}"))
    assert toolset is concierge and raw.name == "get_weather"
    assert offered.owns("get_hotel") and not offered.owns("get_weather")


def test_a_client_function_name_is_never_shadowed() -> None:
    offered = ServerFunctions([Fixed("travel", "lookup", "other")], taken={"lookup"})
    assert [s.name for s in offered.specs] == ["travel__lookup", "other"]
