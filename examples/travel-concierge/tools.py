"""The travel concierge's functions, run by the client: ``cupola chat travel-concierge
--functions examples/travel-concierge/tools.py``.

They are stand-ins for real services: a few well-known answers plus a stable, hash-derived
fallback, so the same question always gets the same answer (no randomness, no network).
"""

from __future__ import annotations

import hashlib
from typing import Any

CONDITIONS = ["sunny", "partly cloudy", "cloudy", "light rain", "showers", "windy", "clear"]

WEATHER: dict[str, dict[str, Any]] = {
    "tokyo": {"condition": "sunny", "temperature_c": 20, "humidity_pct": 55, "wind_kph": 9},
    "london": {"condition": "light rain", "temperature_c": 12, "humidity_pct": 81, "wind_kph": 17},
    "paris": {
        "condition": "partly cloudy",
        "temperature_c": 16,
        "humidity_pct": 64,
        "wind_kph": 11,
    },
    "new york": {"condition": "clear", "temperature_c": 18, "humidity_pct": 48, "wind_kph": 14},
    "seattle": {"condition": "showers", "temperature_c": 11, "humidity_pct": 86, "wind_kph": 13},
}

FLIGHTS: dict[str, dict[str, Any]] = {
    "BA005": {
        "airline": "British Airways",
        "origin": "London Heathrow",
        "destination": "Tokyo Haneda",
        "status": "on time",
        "departure": "19:05",
        "gate": "B42",
        "delay_minutes": 0,
    },
    "UA837": {
        "airline": "United Airlines",
        "origin": "San Francisco",
        "destination": "Tokyo Narita",
        "status": "delayed",
        "departure": "11:50",
        "gate": "G91",
        "delay_minutes": 35,
    },
}

HOTELS: dict[str, dict[str, Any]] = {
    "marriott marquis": {
        "name": "Marriott Marquis",
        "city": "New York",
        "address": "1535 Broadway, New York",
        "check_in": "16:00",
        "check_out": "11:00",
        "amenities": ["fitness centre", "restaurant", "free wifi"],
    },
    "park hyatt tokyo": {
        "name": "Park Hyatt Tokyo",
        "city": "Tokyo",
        "address": "3-7-1-2 Nishi-Shinjuku, Tokyo",
        "check_in": "15:00",
        "check_out": "12:00",
        "amenities": ["pool", "spa", "free wifi"],
    },
}

AIRLINES = ["Contoso Air", "Fabrikam Airways", "Northwind Express", "Tailspin Airlines"]
AIRPORTS = ["London Heathrow", "Tokyo Haneda", "Paris Charles de Gaulle", "New York JFK", "Seattle"]
STATUSES = ["on time", "on time", "on time", "delayed", "boarding"]
CITIES = ["Tokyo", "London", "Paris", "New York", "Seattle", "Lisbon"]
AMENITIES = ["free wifi", "breakfast", "fitness centre", "pool", "airport shuttle", "parking"]


def _seed(kind: str, key: str) -> int:
    """A stable number for a key: the same key gives the same number in every process."""
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}".encode()).digest()[:8], "big")


def _key(text: str) -> str:
    return " ".join(str(text).lower().split())


def get_weather(city: str) -> dict[str, Any]:
    """Current weather for ``city``; ``temperature_c`` is in degrees Celsius."""
    key = _key(city)
    known = WEATHER.get(key)
    if known is None:
        seed = _seed("weather", key)
        known = {
            "condition": CONDITIONS[seed % len(CONDITIONS)],
            "temperature_c": -5 + (seed >> 8) % 36,
            "humidity_pct": 30 + (seed >> 16) % 61,
            "wind_kph": (seed >> 24) % 31,
        }
    return {"city": str(city).strip(), **known}


def get_flight_status(flight_number: str) -> dict[str, Any]:
    """The status of a flight, by its number (``BA005``)."""
    key = "".join(str(flight_number).upper().split())
    known = FLIGHTS.get(key)
    if known is None:
        seed = _seed("flight", key)
        count = len(AIRPORTS)
        origin = seed % count
        destination = (origin + 1 + (seed >> 4) % (count - 1)) % count  # never the origin
        status = STATUSES[(seed >> 8) % len(STATUSES)]
        known = {
            "airline": AIRLINES[(seed >> 12) % len(AIRLINES)],
            "origin": AIRPORTS[origin],
            "destination": AIRPORTS[destination],
            "status": status,
            "departure": f"{(seed >> 16) % 24:02d}:{5 * ((seed >> 24) % 12):02d}",
            "gate": f"{'ABCDE'[(seed >> 28) % 5]}{1 + (seed >> 32) % 40}",
            "delay_minutes": 5 * (1 + (seed >> 36) % 12) if status == "delayed" else 0,
        }
    return {"flight_number": key, **known}


def get_hotel_info(hotel_name: str) -> dict[str, Any]:
    """Check-in and check-out times, address and amenities of a hotel."""
    key = _key(hotel_name)
    known = HOTELS.get(key)
    if known is not None:
        return {**known, "amenities": list(known["amenities"])}
    seed = _seed("hotel", key)
    picked = [a for i, a in enumerate(AMENITIES) if (seed >> i) & 1] or AMENITIES[:1]
    return {
        "name": str(hotel_name).strip(),
        "city": CITIES[seed % len(CITIES)],
        "address": f"{1 + (seed >> 8) % 400} Station Road",
        "check_in": f"{14 + (seed >> 20) % 3}:00",
        "check_out": f"{10 + (seed >> 24) % 3}:00",
        "amenities": picked,
    }
