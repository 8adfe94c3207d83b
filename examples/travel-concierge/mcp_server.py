"""The travel concierge's tools as an MCP server, over stdio (the platform starts it) or
streamable HTTP (the platform reaches it):

    python examples/travel-concierge/mcp_server.py                      # stdio
    python examples/travel-concierge/mcp_server.py --http --port 8931   # http://127.0.0.1:8931/mcp

The answers come from ``tools.py`` beside this file: deterministic, no network.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

_spec = importlib.util.spec_from_file_location("travel_tools", Path(__file__).with_name("tools.py"))
assert _spec is not None and _spec.loader is not None
travel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(travel)

server = MCPServer(
    name="travel",
    instructions="Weather, flight status and hotel information for travellers.",
)


@server.tool()
def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city, with the temperature in degrees Celsius."""
    result: dict[str, Any] = travel.get_weather(city)
    return result


@server.tool()
def get_flight_status(flight_number: str) -> dict[str, Any]:
    """Status of a flight by its number, e.g. BA005: on time or delayed, gate, departure."""
    result: dict[str, Any] = travel.get_flight_status(flight_number)
    return result


@server.tool()
def get_hotel_info(hotel_name: str) -> dict[str, Any]:
    """Check-in and check-out times, address and amenities of a hotel."""
    result: dict[str, Any] = travel.get_hotel_info(hotel_name)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args(argv)
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
