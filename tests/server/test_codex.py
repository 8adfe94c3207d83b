"""Codex CLI itself (npm @openai/codex, installed by `make test`) run against cupola with the
configuration docs/codex.md gives users: a custom model provider whose base URL is cupola's
``/v1``, on the Responses wire API, with a cupola API key. Everything else is Codex's default:
its sandbox, its tools (among them a ``namespace`` of sub-agent tools and ``web_search``), its
request fields. ``codex exec`` sends its prompt to a scripted cupola deployment, runs the shell
command the model asks for, sends the output back, and prints the final answer."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import live_server
from cupola.settings import DeploymentConfig
from live_server import LiveServer, make_settings, start_server

ROOT = Path(__file__).resolve().parents[2]
CODEX = ROOT / ".venv" / "codex" / "node_modules" / ".bin" / "codex"
NOTE = "note-from-the-workspace"
WRITE_AND_READ = "echo written-through-codex > proof.txt && cat note.txt"
CODER = DeploymentConfig.model_validate(
    {
        "name": "codex-coder",
        "provider": "scripted",
        "mode": "script",
        # each step matches the last thing the model was given: the prompt, or a tool output
        "script": [
            {"match": "Process exited with code 0[\\s\\S]*" + NOTE, "reply": f"Read: {NOTE}."},
            {"match": "Read-only file system", "reply": "The sandbox refused the write."},
            {"match": "invalid agent id", "reply": "Codex dispatched close_agent."},
            {"match": "unsupported call", "reply": "Codex did not know the tool."},
            {
                "match": "cupola-proof",
                "tool_calls": [{"name": "exec_command", "arguments": {"cmd": WRITE_AND_READ}}],
            },
            {
                # a function of Codex's `multi_agent_v1` namespace, under its served name
                "match": "cupola-helper",
                "tool_calls": [
                    {"name": "multi_agent_v1__close_agent", "arguments": {"target": "helper"}}
                ],
            },
            {"reply": "Nothing to do."},
        ],
    }
)


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[tuple[LiveServer, str]]:
    """A server that requires API keys, and a key for Codex."""
    live = start_server(
        make_settings(
            database_url,
            deployments=[*live_server.test_deployments(), CODER],
            auth={"required": "always", "key_cache_seconds": 0},
        )
    )
    _key, secret = live.services.store.create_key_sync("codex")
    yield live, secret
    live.stop()


def codex(
    live: LiveServer, tmp: Path, key: str, prompt: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``codex exec`` in a fresh git repository under ``tmp/work`` holding ``note.txt``,
    with the docs/codex.md configuration in its own ``CODEX_HOME``."""
    assert CODEX.exists(), f"{CODEX} is missing: run `make test` (it installs it)"
    home, work, scratch = tmp / "home", tmp / "work", tmp / "scratch"
    for path in (home, work, scratch):
        path.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        'model = "codex-coder"\n'
        'model_provider = "cupola"\n\n'
        "[model_providers.cupola]\n"
        'name = "cupola"\n'
        f'base_url = "{live.url}/v1"\n'
        'wire_api = "responses"\n'
        'env_key = "CUPOLA_API_KEY"\n'
    )
    (work / "note.txt").write_text(NOTE + "\n")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    settings = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home),
        # Codex puts its sandbox helper in CODEX_HOME and refuses to under the temp dir,
        # where pytest's tmp_path lives: point the temp dir elsewhere.
        "TMPDIR": str(scratch),
        "CUPOLA_API_KEY": key,
        **env,
    }
    return subprocess.run(
        [str(CODEX), "exec", *args, prompt],
        cwd=work,
        env=settings,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def received(stderr: str) -> list[dict[str, Any]]:
    """The Responses SSE events Codex parsed, from its own trace log."""
    marker = "SSE event: "
    return [json.loads(line.split(marker, 1)[1]) for line in stderr.splitlines() if marker in line]


def test_codex_runs_a_shell_command_through_cupola(
    guarded: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = guarded
    run = codex(live, tmp_path, key, "run the cupola-proof command", "--sandbox", "workspace-write")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == f"Read: {NOTE}."  # the command's output reached the model
    assert (tmp_path / "work" / "proof.txt").read_text() == "written-through-codex\n"


def test_codex_default_sandbox_keeps_the_workspace_read_only(
    guarded: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = guarded
    run = codex(live, tmp_path, key, "run the cupola-proof command")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "The sandbox refused the write."
    assert not (tmp_path / "work" / "proof.txt").exists()


def test_codex_default_tools_are_served(guarded: tuple[LiveServer, str], tmp_path: Path) -> None:
    """Codex's default request offers a ``namespace`` of sub-agent tools and ``web_search``:
    the namespace is served (the model's call comes back with its ``namespace``, and Codex
    dispatches it to its sub-agent handler, which refuses the made-up agent id), and
    web_search, which cupola has no provider for, is left out and recorded."""
    live, key = guarded
    run = codex(
        live,
        tmp_path,
        key,
        "close the cupola-helper agent",
        RUST_LOG="codex_api::sse::responses=trace",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "Codex dispatched close_agent."
    events = received(run.stderr)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    call = next(item for item in done if item["type"] == "function_call")
    assert (call["namespace"], call["name"]) == ("multi_agent_v1", "close_agent")
    first = next(e["response"] for e in events if e["type"] == "response.completed")
    assert json.loads(first["metadata"]["cupola.omitted_tools"]) == ["web_search"]
    kinds = {(tool["type"], tool["name"]) for tool in first["tools"]}
    assert ("function", "exec_command") in kinds and ("namespace", "multi_agent_v1") in kinds
    assert all(tool["type"] != "web_search" for tool in first["tools"])


def test_a_wrong_key_fails_cleanly(guarded: tuple[LiveServer, str], tmp_path: Path) -> None:
    live, _key = guarded
    run = codex(live, tmp_path, "cpl-wrong", "run the cupola-proof command")
    assert run.returncode != 0
    # after its five reconnects (about 8 s), Codex prints cupola's own message
    assert "401 Unauthorized: a valid API key is required" in run.stderr, run.stderr[-2000:]
    assert "cpl-wrong" not in run.stderr
    assert run.stdout.strip() == ""
    assert not (tmp_path / "work" / "proof.txt").exists()
