"""``python -m bench.bench_tracing``: what tracing costs stored Responses under load.

Three ``cupola serve`` processes of this tree run side by side, each with its own SQLite
database and the scripted ``echo`` deployment: tracing off (``CUPOLA_TELEMETRY__ENABLED=
false``), tracing on (the default: spans stored, content capture off) and tracing on with
content capture. Stored ``POST /v1/responses`` at concurrency 16 (``--levels``), in
interleaved rounds so drift on a shared machine hits all three alike; medians of the rounds
and each one's ratio to tracing off (issue 9's targets: at least 0.95 with capture off, 0.90
with capture on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import orjson

from bench.http_load import side_by_side
from bench.server import CupolaServer

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "Hello, benchmark! Please echo this sentence back."


class EnvServer(CupolaServer):
    """``cupola serve`` with extra environment variables."""

    def __init__(self, name: str, extra_env: dict[str, str]) -> None:
        super().__init__()
        self.name = name
        self.extra_env = extra_env

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--no-store", action="store_true", help="trace without storing spans (the hook alone)"
    )
    args = parser.parse_args(argv)
    store = {"CUPOLA_TELEMETRY__STORE": "false"} if args.no_store else {}
    servers = [
        EnvServer("tracing off", {"CUPOLA_TELEMETRY__ENABLED": "false"}),
        EnvServer("tracing on", store),
        EnvServer("capture on", {**store, "CUPOLA_TELEMETRY__CAPTURE_CONTENT": "true"}),
    ]
    levels = [int(x) for x in args.levels.split(",")]
    try:
        for server in servers:
            server.start()
        runs = side_by_side(
            servers,
            levels,
            args.rounds,
            duration=args.duration,
            warmup=args.warmup,
            body={"model": "echo", "input": PROMPT},
        )
    finally:
        for server in servers:
            server.cleanup()
    summary = []
    print("\nmedians of the rounds (ratio to tracing off):")
    for level in levels:
        base = statistics.median(r["rps"] for r in runs[("tracing off", level)])
        for server in servers:
            rows = runs[(server.name, level)]
            rps = statistics.median(r["rps"] for r in rows)
            cpu = statistics.median(r["server_cpu_ms_per_request"] or 0.0 for r in rows)
            summary.append(
                {
                    "server": server.name,
                    "concurrency": level,
                    "rps": rps,
                    "server_cpu_ms_per_request": cpu,
                    "ratio": round(rps / base, 3),
                }
            )
            print(
                f"c={level:<3} {server.name:<12} {rps:8.1f} req/s ({rps / base:5.3f})  "
                f"server CPU {cpu:.3f} ms/req"
            )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "tracing.json"
    out.write_bytes(orjson.dumps({"summary": summary}, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
