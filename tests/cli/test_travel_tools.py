"""The travel concierge example's functions: deterministic, offline stand-ins."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cupola.cli.manifests import load_agent_file, load_toolbox_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge"


@pytest.fixture(scope="module")
def tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("travel_tools", EXAMPLE / "tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_known_answers(tools: ModuleType) -> None:
    assert tools.get_weather("Tokyo") == {
        "city": "Tokyo",
        "condition": "sunny",
        "temperature_c": 20,
        "humidity_pct": 55,
        "wind_kph": 9,
    }
    flight = tools.get_flight_status("ba 005")
    assert flight["flight_number"] == "BA005"
    assert flight["status"] == "on time" and flight["origin"] == "London Heathrow"
    hotel = tools.get_hotel_info("  marriott   MARQUIS ")
    assert hotel["name"] == "Marriott Marquis" and hotel["check_in"] == "16:00"


@pytest.mark.parametrize("city", ["Reykjavik", "Ulaanbaatar", "São Paulo", ""])
def test_weather_fallback_is_deterministic(tools: ModuleType, city: str) -> None:
    first = tools.get_weather(city)
    assert first == tools.get_weather(city)
    assert first["city"] == city
    assert isinstance(first["temperature_c"], int) and -5 <= first["temperature_c"] <= 30
    assert first["condition"] in tools.CONDITIONS
    json.dumps(first)


@pytest.mark.parametrize("number", ["XY123", "QF1", "LH 400"])
def test_flight_fallback_is_deterministic(tools: ModuleType, number: str) -> None:
    first = tools.get_flight_status(number)
    assert first == tools.get_flight_status(number)
    assert first["origin"] != first["destination"]
    assert (first["delay_minutes"] > 0) == (first["status"] == "delayed")
    hours, minutes = first["departure"].split(":")
    assert 0 <= int(hours) < 24 and 0 <= int(minutes) < 60


def test_hotel_fallback_is_deterministic(tools: ModuleType) -> None:
    first = tools.get_hotel_info("Hotel Nowhere")
    assert first == tools.get_hotel_info("Hotel Nowhere")
    assert {**first, "name": "x"} == {**tools.get_hotel_info("hotel  NOWHERE"), "name": "x"}
    assert first["amenities"] and set(first["amenities"]) <= set(tools.AMENITIES)
    first["amenities"].append("mutated")
    assert "mutated" not in tools.get_hotel_info("Marriott Marquis")["amenities"]
    tools.get_hotel_info("Marriott Marquis")["amenities"].append("mutated")
    assert "mutated" not in tools.get_hotel_info("Marriott Marquis")["amenities"]


def test_answers_are_stable_across_processes() -> None:
    """No use of hash(): another interpreter (another hash seed) gives the same answers."""
    code = (
        "import importlib.util, json, sys;"
        f"spec = importlib.util.spec_from_file_location('t', {str(EXAMPLE / 'tools.py')!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print(json.dumps([m.get_weather('Oslo'), m.get_flight_status('ZZ9'),"
        " m.get_hotel_info('Hotel Q')]))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1


def test_agent_uses_the_toolbox_of_the_mcp_server() -> None:
    manifest = load_agent_file(EXAMPLE / "agent.yaml")
    toolbox = load_toolbox_file(EXAMPLE / "toolbox.yaml")
    assert manifest.name == "travel-concierge"
    assert manifest.definition["tools"] == [{"type": "toolbox", "name": toolbox.name}]
    (server,) = toolbox.tools
    assert server["type"] == "mcp" and server["command"] == ["python", "mcp_server.py"]
    assert Path(server["cwd"]) == EXAMPLE


def test_tools_match_the_function_agent_file(tools: ModuleType) -> None:
    manifest = load_agent_file(EXAMPLE / "agent-functions.yaml")
    assert manifest.name == "travel-concierge-functions"
    assert manifest.definition["model"] == "local-small"
    assert "Voice output rules" in manifest.definition["instructions"]
    for tool in manifest.definition["tools"]:
        assert tool["type"] == "function" and tool["description"]
        fn = getattr(tools, tool["name"])
        required = tool["parameters"]["required"]
        assert fn(**{param: "Tokyo" for param in required})
