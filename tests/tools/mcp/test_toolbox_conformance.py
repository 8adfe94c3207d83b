"""The toolbox endpoint against the MCP conformance suite (npm @modelcontextprotocol/conformance,
installed by `make test`). The toolbox bundles conformance_server.py, which implements the
tools the scenarios call, so each scenario goes client -> cupola toolbox endpoint -> that MCP
server and back, log messages, sampling and elicitation requests included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from live_server import LiveServer

ROOT = Path(__file__).resolve().parents[3]
CONFORMANCE = ROOT / ".venv" / "conformance" / "node_modules" / ".bin" / "conformance"
SERVER = [sys.executable, str(Path(__file__).with_name("conformance_server.py"))]
SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-with-logging",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
]


@pytest.fixture(scope="module")
def toolbox_url(server: LiveServer) -> str:
    tool = {"type": "mcp", "server_label": "suite", "command": SERVER, "require_approval": "never"}
    r = httpx.post(f"{server.project_url}/toolboxes/conformance/versions", json={"tools": [tool]})
    assert r.status_code == 200, r.text
    return f"{server.project_url}/toolboxes/conformance/mcp"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_toolbox_endpoint_passes_the_conformance_scenario(toolbox_url: str, scenario: str) -> None:
    assert CONFORMANCE.exists(), f"{CONFORMANCE} is missing: run `make test` (it installs it)"
    run = subprocess.run(
        [str(CONFORMANCE), "server", "--url", toolbox_url, "--scenario", scenario],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "0 failed" in output and "FAILURE" not in output, output
