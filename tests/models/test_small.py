"""The generic help for a small local model that calls tools (cupola.models.small), and how
the embedded adapter applies it to a request (no model is run here)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from cupola.models.base import ChatMessage, FunctionSpec, ModelRequest, ToolCallDelta
from cupola.models.embedded import _copied, _plan
from cupola.models.small import copy_arguments, grounded, offered_tools, relevance


def _tool(
    name: str, description: str, param: str, about: str, kind: str = "string"
) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        description=description,
        parameters={
            "type": "object",
            "properties": {param: {"type": kind, "description": about}},
            "required": [param],
            "additionalProperties": False,
        },
    )


WEATHER = _tool("get_weather", "Current weather for a city.", "city", "The city name.")
FLIGHT = _tool(
    "get_flight_status",
    "The live status of a flight.",
    "flight_number",
    "The airline code and number, for example QF12.",
)
TIMER = _tool("set_timer", "Start a countdown timer.", "minutes", "Whole minutes.", kind="integer")
TOOLS = (WEATHER, FLIGHT, TIMER)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def names(tools: list[FunctionSpec]) -> list[str]:
    return [t.name for t in tools]


def test_one_clearly_relevant_tool_is_offered_alone() -> None:
    tools, confident = offered_tools(TOOLS, [user("Set a countdown for my eggs")])
    assert confident and names(tools) == ["set_timer"]
    # a code shaped like a parameter's example (letters then digits) is evidence too
    tools, confident = offered_tools(TOOLS, [user("Has ZX981 landed yet?")])
    assert confident and names(tools) == ["get_flight_status"]


def test_no_clear_winner_offers_every_tool_in_their_order() -> None:
    for text in ("Hello!", "What is 2 + 2?", "weather or timer?"):
        tools, confident = offered_tools(TOOLS, [user(text)])
        assert not confident and set(names(tools)) == set(names(list(TOOLS)))
    tools, confident = offered_tools(TOOLS, [user("Hello!")])
    assert names(tools) == names(list(TOOLS))
    # a single tool is never "confident": there was no choice to narrow
    assert offered_tools((WEATHER,), [user("Weather in Rome?")]) == ([WEATHER], False)


def test_relevance_counts_examples_and_allowed_values() -> None:
    unit = FunctionSpec(
        name="convert",
        description="Convert a length.",
        parameters={
            "type": "object",
            "properties": {"unit": {"type": "string", "enum": ["furlong", "parsec"]}},
        },
    )
    assert relevance((WEATHER, unit), [user("How far is a parsec?")]) == [0, 1]
    # only the last user message counts
    said = [user("weather in Oslo"), ChatMessage("assistant", "ok"), user("thanks")]
    assert relevance((WEATHER, unit), said) == [0, 0]


def test_a_miscopied_code_is_copied_from_the_users_words() -> None:
    said = [user("Has AF1234 landed yet?")]
    assert copy_arguments({"flight_number": "1234"}, said) == {"flight_number": "AF1234"}
    assert copy_arguments({"flight_number": "AF1243"}, said) == {"flight_number": "AF1234"}
    # nested values too; what was said is kept as it is
    assert copy_arguments({"x": [{"y": "AF123"}], "n": 5}, said) == {"x": [{"y": "AF1234"}], "n": 5}
    assert copy_arguments({"flight_number": "af1234"}, said) == {"flight_number": "af1234"}


def test_an_invented_argument_is_not_copied_into_something_said() -> None:
    for text, arguments in (
        ("Hello!", {"city": "London"}),
        ("Who wrote Hamlet?", {"city": "Paris"}),
        ("Good night!", {"city": "Tokyo"}),
    ):
        fixed = copy_arguments(arguments, [user(text)])
        assert fixed == arguments and not grounded(fixed, [user(text)])


def _call(arguments: dict[str, Any], name: str = "get_flight_status") -> list[Any]:
    return [ToolCallDelta(0, call_id="call_1", name=name, arguments=json.dumps(arguments))]


def test_the_adapter_repairs_a_call_only_when_the_result_is_grounded_and_valid() -> None:
    request = ModelRequest((user("Is DL1 delayed?"),), tools=TOOLS)
    # grounded already: the call is kept exactly
    kept = _call({"flight_number": "DL1"})
    assert _copied(kept, {"flight_number": "DL1"}, request) == kept
    # miscopied: repaired
    (fixed,) = _copied(_call({"flight_number": "DAL1"}), {"flight_number": "DAL1"}, request)
    assert isinstance(fixed, ToolCallDelta)
    assert json.loads(fixed.arguments) == {"flight_number": "DL1"} and fixed.call_id == "call_1"
    # invented: no call (the adapter then answers in words)
    assert _copied(_call({"flight_number": "XY99"}), {"flight_number": "XY99"}, request) == []
    # the repair would break the tool's schema: no call
    strict = FunctionSpec(
        name="get_flight_status",
        parameters={
            "type": "object",
            "properties": {"flight_number": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{3}$"}},
        },
    )
    narrow = ModelRequest((user("Is DL1 delayed?"),), tools=(strict,))
    assert _copied(_call({"flight_number": "DAL1"}), {"flight_number": "DAL1"}, narrow) == []


def _body(request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(_plan(request, 64).body)
    return body


def test_the_plan_leans_toward_the_one_relevant_tool_only_when_confident() -> None:
    confident = _body(ModelRequest((user("Start a countdown of 5 minutes"),), tools=TOOLS))
    schema = confident["response_format"]["json_schema"]["schema"]
    assert [b["properties"].get("tool", {}).get("const") for b in schema["anyOf"]] == [
        None,
        "set_timer",
    ]
    assert confident["logit_bias"] and confident["logit_bias"][0][0] == "tool"
    assert "get_weather" not in confident["messages"][0]["content"]

    unsure = _body(ModelRequest((user("Hello!"),), tools=TOOLS))
    branches = unsure["response_format"]["json_schema"]["schema"]["anyOf"]
    assert len(branches) == 1 + len(TOOLS) and "logit_bias" not in unsure
    # tool_choice "required" keeps every tool (ranked), with no lean: a call is forced anyway
    required = _body(
        ModelRequest((user("Start a countdown"),), tools=TOOLS, tool_choice="required")
    )
    forced = required["response_format"]["json_schema"]["schema"]["anyOf"]
    assert forced[0]["properties"]["tool"]["const"] == "set_timer" and len(forced) == len(TOOLS)
    assert "logit_bias" not in required
