"""Cost of the request gate (key check, role table, Origin/Host/CORS checks) per request,
side by side with the code before it (commit 4aad759) in the same run.

Each tree's real app (``create_app``) is called in-process through ASGI, without sockets, so
what differs between the two trees is the middleware and the route guard:

    python bench/bench_access.py [--requests 4000] [--rounds 5]

Cases: ``GET /deployments`` with a key (verified once, then cached), the same keyless on a
loopback server, and ``GET /healthz``. Prints the median per-request time of each tree and
their ratio (medians over the rounds, trees alternating round by round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASELINE_COMMIT = "4aad759"
BASELINE_TREE = Path(tempfile.gettempdir()) / "baseline-access-bench"
HERE = Path(__file__).resolve().parents[1]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Sink:
    """An ASGI ``send`` that keeps the statuses it saw."""

    def __init__(self) -> None:
        self.statuses: set[int] = set()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses.add(message["status"])


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }


async def _worker(requests: int) -> dict[str, float]:
    from cupola.server.app import build_services, create_app
    from cupola.settings import Settings

    data = tempfile.mkdtemp(prefix="bench-access-")
    results: dict[str, float] = {}
    for case, auth in (("keyed", "always"), ("keyless", "never")):
        settings = Settings.model_validate(
            {
                "data_dir": data,
                "database_url": f"sqlite:///{data}/{case}.db",
                "auth": {"required": auth, "key_cache_seconds": 3600},
                "deployments": [{"name": "echo", "provider": "scripted"}],
            }
        )
        services = build_services(settings)
        app = create_app(settings, services)
        await services.store.open()
        _key, secret = services.store.create_key_sync("bench")
        headers = [
            (b"host", b"127.0.0.1:8765"),
            (b"authorization", f"Bearer {secret}".encode()),
            (b"user-agent", b"OpenAI/Python 2.0"),
            (b"accept", b"application/json"),
        ]
        paths = [("deployments", "/api/projects/default/deployments"), ("healthz", "/healthz")]
        for name, path in paths:
            if name == "healthz" and case == "keyless":
                continue
            sink = _Sink()
            for _ in range(200):  # warm-up (the key is verified and cached here)
                await app(_scope(path, headers), _receive, sink)
            assert sink.statuses == {200}, sink.statuses
            times = []
            for _ in range(requests):
                start = time.perf_counter()
                await app(_scope(path, headers), _receive, sink)
                times.append(time.perf_counter() - start)
            results[f"{name} ({case})"] = statistics.median(times) * 1e6
        await services.store.close()
    return results


def _run(tree: Path, requests: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", "--requests", str(requests)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(_worker(args.requests))))
        return
    if not BASELINE_TREE.exists():
        subprocess.run(
            ["git", "-C", str(HERE), "worktree", "add", "--detach", str(BASELINE_TREE)]
            + [BASELINE_COMMIT],
            check=True,
            capture_output=True,
        )
    rounds: dict[str, dict[str, list[float]]] = {"baseline": {}, "current": {}}
    for _ in range(args.rounds):
        for label, tree in (("baseline", BASELINE_TREE), ("current", HERE)):
            for case, micros in _run(tree, args.requests).items():
                rounds[label].setdefault(case, []).append(micros)
    print(f"{'case':28} {'baseline µs':>12} {'current µs':>11} {'ratio':>6}")
    for case in rounds["current"]:
        base = statistics.median(rounds["baseline"][case])
        now = statistics.median(rounds["current"][case])
        print(f"{case:28} {base:12.1f} {now:11.1f} {now / base:6.2f}")


if __name__ == "__main__":
    main()
