"""``python -m bench.bench_instructions``: CPU instructions per stored Responses request,
counted by valgrind (callgrind), for a baseline tree and this one, side by side.

On a shared machine wall-clock and even CPU-time figures move by more than the effects
worth measuring; the count of instructions executed barely does (about 1% from run to
run: the SQLite writer thread's batches depend on timing). Each tree's real app
(``create_app``, SQLite, the scripted ``echo`` deployment, logging configured as ``cupola
serve`` does it, to a file) is called in-process through ASGI; after a warm-up,
instrumentation is switched on for ``--requests`` stored ``POST /v1/responses`` (all
threads: the event loop and the SQLite writer) and off again. No HTTP server and no
client: what differs between the trees is the app. The trees run in parallel (one process
each; valgrind runs a process on one core), each about 50 times slower than normal.

    git worktree add /tmp/baseline 4aad759
    .venv/bin/python -m bench.bench_instructions --baseline /tmp/baseline/src
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BODY = json.dumps(
    {"model": "echo", "input": "Hello, benchmark! Please echo this sentence back."}
).encode()
HERE = Path(__file__).resolve().parents[1]


def _scope() -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8765"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/responses",
        "raw_path": b"/v1/responses",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


def _callgrind(switch: str) -> None:
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True)


async def _worker(requests: int, access_log: bool, tracing: bool) -> None:
    """Runs under valgrind: warm up, then count ``requests`` stored POSTs."""
    data = tempfile.mkdtemp(prefix="bench-instr-")
    log = (Path(data) / "server.log").open("a")
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s", stream=log)
    from cupola.server.app import build_services, create_app
    from cupola.settings import Settings

    config: dict[str, Any] = {
        "data_dir": data,
        "database_url": f"sqlite:///{data}/db.sqlite",
        "deployments": [{"name": "echo", "provider": "scripted", "mode": "echo"}],
    }
    if "telemetry" in Settings.model_fields:  # trees before tracing have none
        config["telemetry"] = {"enabled": tracing}
    settings = Settings.model_validate(config)
    if hasattr(settings.server, "access_log"):  # trees before issue 8 have none
        settings.server.access_log = access_log
    services = build_services(settings)
    services.store.migrate()
    app = create_app(settings, services)
    statuses: set[int] = set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    await services.store.open()
    for _ in range(50):
        await app(_scope(), _receive, send)
    assert statuses == {200}, statuses
    gc.collect()
    _callgrind("on")
    for _ in range(requests):
        await app(_scope(), _receive, send)
    _callgrind("off")
    await services.store.close()
    shutil.rmtree(data, ignore_errors=True)


def _start(
    src: str, requests: int, access_log: bool, tracing: bool, out: Path
) -> subprocess.Popen[str]:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.bench_instructions",
        "--worker",
        "--requests",
        str(requests),
        *(["--access-log"] if access_log else []),
        *(["--tracing"] if tracing else []),
    ]
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}"}
    return subprocess.Popen(command, env=env, cwd=HERE, stderr=subprocess.PIPE, text=True)


def _collected(stderr: str) -> int:
    match = re.search(r"Collected : (\d+)", stderr)
    if match is None:
        raise RuntimeError(f"no callgrind total in:\n{stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="src/ directory of the baseline tree")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--access-log", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="leave tracing (telemetry.enabled) on in this tree; off by default, so both "
        "trees do the same work (the baseline has no tracing)",
    )
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(args.requests, args.access_log, args.tracing))
        return 0
    if not args.baseline:
        parser.error("--baseline is required")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    here = str(HERE / "src")
    variants = [
        ("baseline", args.baseline, True),
        ("access log on", here, True),
        ("access log off", here, False),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        procs = [
            (name, _start(src, args.requests, log, args.tracing, Path(tmp) / f"{i}.out"))
            for i, (name, src, log) in enumerate(variants)
        ]
        counts = {}
        for name, proc in procs:
            _out, err = proc.communicate()
            counts[name] = _collected(err) / args.requests
    base = counts["baseline"]
    tracing = "on" if args.tracing else "off"
    print(
        f"instructions per stored POST /v1/responses ({args.requests} requests each, "
        f"tracing {tracing}):"
    )
    for name, count in counts.items():
        print(f"  {name:<15} {count / 1e6:7.3f} M  ({count / base:5.3f} of the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
