"""Claude Code itself (npm @anthropic-ai/claude-code, installed by `make test`) run against
cupola with its Foundry settings, as docs/anthropic.md tells users to set them: it sends its
prompt to a cupola deployment through the Anthropic Messages endpoint, runs the tool the model
asks for, and sends the result back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import live_server
from cupola.settings import DeploymentConfig
from live_server import LiveServer, make_settings, start_server

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = ROOT / ".venv" / "claude-code" / "node_modules" / ".bin" / "claude"
CODER = DeploymentConfig.model_validate(
    {
        "name": "claude-coder",
        "provider": "scripted",
        "mode": "script",
        "script": [
            {
                "match": "cupola-proof",
                "tool_calls": [
                    {
                        "name": "Bash",
                        "arguments": {
                            "command": "echo written-through-cupola > proof.txt",
                            "description": "Write the proof file",
                        },
                    }
                ],
            },
            {"reply": "The proof file is written."},
        ],
    }
)


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[tuple[LiveServer, str]]:
    """A server that requires API keys, and a key for Claude Code."""
    live = start_server(
        make_settings(
            database_url,
            deployments=[*live_server.test_deployments(), CODER],
            auth={"required": "always", "key_cache_seconds": 0},
        )
    )
    _key, secret = live.services.store.create_key_sync("claude-code")
    yield live, secret
    live.stop()


def claude(
    live: LiveServer, cwd: Path, key: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    assert CLAUDE.exists(), f"{CLAUDE} is missing: run `make test` (it installs it)"
    cwd.mkdir(exist_ok=True)
    settings = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd.parent / "home"),
        "CLAUDE_CODE_USE_FOUNDRY": "1",
        "ANTHROPIC_FOUNDRY_BASE_URL": f"{live.url}/anthropic",
        "ANTHROPIC_FOUNDRY_API_KEY": key,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "claude-coder",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "claude-coder",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "echo",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **env,
    }
    return subprocess.run(
        [str(CLAUDE), "-p", *args],
        cwd=cwd,
        env=settings,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_claude_code_runs_a_tool_through_cupola(
    guarded: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = guarded
    work = tmp_path / "work"
    run = claude(
        live,
        work,
        key,
        "write the cupola-proof file",
        "--model",
        "sonnet",
        "--allowedTools",
        "Bash",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "The proof file is written."
    assert (work / "proof.txt").read_text() == "written-through-cupola\n"


def test_claude_code_prompt_reaches_the_deployment(
    guarded: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = guarded
    run = claude(live, tmp_path / "work", key, "say hello to cupola", "--model", "haiku")
    assert run.returncode == 0, run.stdout + run.stderr
    echoed = run.stdout.splitlines()  # echo replies with the conversation it was given
    assert echoed[0].startswith("system: ") and "Claude Code" in echoed[0]
    said = [line for line in echoed if line.startswith("user: ")]
    assert said and said[-1].endswith("say hello to cupola")


def test_a_wrong_key_and_the_mutually_exclusive_trap_fail_clearly(
    guarded: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = guarded
    # Claude Code retries a refused key for minutes, silently, unless told not to retry.
    wrong = claude(
        live, tmp_path / "work", "cpl-wrong", "hi", "--model", "haiku", CLAUDE_CODE_MAX_RETRIES="0"
    )
    assert wrong.returncode != 0
    assert "Not logged in" in wrong.stdout + wrong.stderr  # what Claude Code makes of a 401
    assert "user: hi" not in wrong.stdout
    both = claude(
        live,
        tmp_path / "work",
        key,
        "hello",
        "--model",
        "haiku",
        ANTHROPIC_FOUNDRY_RESOURCE="my-resource",
    )
    assert "baseURL and resource are mutually exclusive" in both.stdout + both.stderr
