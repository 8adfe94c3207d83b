"""``python -m bench.bench_access_log``: what the access log line costs under load.

Three ``cupola serve`` processes run side by side in one run, each with its own SQLite
database and the scripted ``echo`` deployment: a baseline tree (``--baseline``, e.g. a
``git worktree`` of the commit before the access log, whose request log is off), this tree
with the access log on (the default) and this tree with ``--no-access-log``. Stored
``POST /v1/responses`` at concurrency 16 and 64, in interleaved rounds so drift on a shared
machine hits all three alike; medians of the rounds, and each one's ratio to the baseline.
The log goes where ``cupola serve`` writes it (a file here), as in production.

    git worktree add /tmp/baseline 4aad759
    .venv/bin/python -m bench.bench_access_log --baseline /tmp/baseline/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import orjson

from bench.http_load import side_by_side
from bench.server import CupolaServer

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "Hello, benchmark! Please echo this sentence back."


class TreeServer(CupolaServer):
    """``cupola serve`` importing cupola from ``src`` (None: the installed tree)."""

    def __init__(self, name: str, src: str | None, extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(extra_args=extra_args)
        self.name = name
        self.src = src

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.src is not None:
            env["PYTHONPATH"] = self.src
        return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="src/ directory of the baseline tree")
    parser.add_argument("--levels", default="16,64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args(argv)
    here = os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parents[1] / "src")
    servers = [
        TreeServer("baseline", args.baseline),
        TreeServer("access log on", here),
        TreeServer("access log off", here, ("--no-access-log",)),
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
        logged = servers[1].log.read_text(errors="replace").count("cupola.access")
    finally:
        for server in servers:
            server.cleanup()
    summary = []
    print("\nmedians of the rounds (ratio to baseline):")
    for level in levels:
        base = statistics.median(r["rps"] for r in runs[("baseline", level)])
        for server in servers:
            rows = runs[(server.name, level)]
            rps = statistics.median(r["rps"] for r in rows)
            p99 = statistics.median(r["p99_ms"] for r in rows)
            cpu = statistics.median(r["server_cpu_ms_per_request"] or 0.0 for r in rows)
            summary.append(
                {
                    "server": server.name,
                    "concurrency": level,
                    "rps": rps,
                    "p99_ms": p99,
                    "server_cpu_ms_per_request": cpu,
                    "ratio": round(rps / base, 3),
                }
            )
            print(
                f"c={level:<3} {server.name:<15} {rps:8.1f} req/s ({rps / base:5.3f})  "
                f"p99 {p99:6.2f} ms  server CPU {cpu:.3f} ms/req"
            )
    print(f"\naccess log lines written by the 'on' server: {logged}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "access_log.json"
    out.write_bytes(
        orjson.dumps(
            {"summary": summary, "runs": {f"{k[0]}@{k[1]}": v for k, v in runs.items()}},
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
