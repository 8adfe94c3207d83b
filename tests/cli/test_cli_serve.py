"""`cupola serve` refuses to start, with one line naming the deployment, when a deployment
cannot be served as configured (rather than failing its first request)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    (
        "{name: a, provider: scripted, fallbacks: [nope]}",
        "deployment 'a': fallback 'nope' is not a declared deployment",
    ),
    ("{name: az, provider: azure_openai}", "deployment 'az' (azure_openai) needs endpoint"),
    (
        "{name: claude, provider: anthropic}",
        "deployment 'claude' (anthropic) has no credential: set api_key: ${ENV_VAR}, "
        "connection: <project connection> or auth: entra",
    ),
    (
        "{name: r, provider: router, router: {routes: [{deployment: r}]}}",
        "deployment 'r': a router cannot route to itself",
    ),
]


@pytest.mark.parametrize(("deployment", "message"), CASES)
def test_a_misconfigured_deployment_stops_serve_with_one_line(
    tmp_path: Path, deployment: str, message: str
) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\ndeployments:\n  - {deployment}\n")
    run = subprocess.run(
        [sys.executable, "-m", "cupola.cli", "serve", "--config", str(config), "--port", "9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "data" / "cupola.db").exists()  # nothing was created
