"""``cupola serve`` as a subprocess on a fresh temp directory, and its cold start.

The temp directory holds a cupola.yaml whose only deployment is the scripted ``echo`` model;
the SQLite database lands in its ``.cupola/`` (the default), so every start is a fresh DB.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.http_load import HOST, wait_until_quiet

CONFIG = """\
project: default
server:
  host: 127.0.0.1
deployments:
  - name: echo
    provider: scripted
    mode: echo
"""
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    """Which event loop and HTTP parser uvicorn runs with (None: what ``cupola serve``
    picks, i.e. uvicorn's ``auto``)."""

    name: str
    loop: str | None = None
    http: str | None = None


AUTO = Variant("auto")
VARIANTS = {
    v.name: v
    for v in (
        AUTO,
        Variant("uvloop+h11", "uvloop", "h11"),
        Variant("asyncio+httptools", "asyncio", "httptools"),
        Variant("asyncio+h11", "asyncio", "h11"),
    )
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def healthz_ok(port: int, timeout: float = 1.0) -> bool:
    """One ``GET /healthz`` on a fresh connection; True on a 200."""
    request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200")


def native_modules(pid: int) -> dict[str, bool]:
    """Whether uvloop's and httptools' extension modules are mapped into the process."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {}
    return {"uvloop": "/uvloop/" in maps, "httptools": "/httptools/" in maps}


class CupolaServer:
    """A ``cupola serve`` process on a free port with its own temp dir and database."""

    def __init__(self, variant: Variant = AUTO, *, extra_args: tuple[str, ...] = ()) -> None:
        self.variant = variant
        self.extra_args = extra_args
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cupola-bench-"))
        self.config = self.dir / "cupola.yaml"
        self.config.write_text(CONFIG)
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cold_start_s: float | None = None

    def command(self) -> list[str]:
        args = ["serve", "--config", str(self.config), "--port", str(self.port), *self.extra_args]
        if self.variant.loop is None and self.variant.http is None:
            return [sys.executable, "-m", "cupola.cli", *args]
        return [
            sys.executable,
            "-m",
            "bench._launch",
            "--loop",
            self.variant.loop or "auto",
            "--http",
            self.variant.http or "auto",
            *args,
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUPOLA_")}
        if self.variant != AUTO:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def start(self, timeout: float = 30.0) -> float:
        """Spawn the server; return seconds from Popen to the first 200 on /healthz
        (polled every 5 ms)."""
        with self.log.open("wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.dir,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        while not healthz_ok(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"cupola serve exited early:\n{self.log_tail()}")
            if time.perf_counter() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"cupola serve not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.005)
        self.cold_start_s = time.perf_counter() - t0
        return self.cold_start_s

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> CupolaServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cleanup()


def cold_starts(runs: int = 3, variant: Variant = AUTO, quiet_wait: float = 0.0) -> dict[str, Any]:
    """``runs`` cold starts, each a fresh process and a fresh database; the median counts."""
    times = []
    for _ in range(runs):
        if quiet_wait:
            wait_until_quiet(quiet_wait)
        server = CupolaServer(variant)
        try:
            times.append(server.start())
        finally:
            server.cleanup()
    return {
        "runs_s": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
    }
