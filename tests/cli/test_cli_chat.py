"""``cupola chat`` against a live server: streaming, conversations, local function calls."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cupola.cli.main import cli
from live_server import LiveServer, free_port

TOOLS = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge" / "tools.py"
MakeAgent = Callable[[str], str]
SUNNY = "It is sunny in Tokyo, twenty degrees."

AGENT = """\
name: {name}
definition:
  model: {model}
  instructions: You are a travel concierge.
  tools:
    - type: function
      name: get_weather
      description: Current weather for a city.
      parameters:
        type: object
        properties:
          city: {{type: string}}
        required: [city]
"""


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    return {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": server.url}


@pytest.fixture
def make_agent(env: dict[str, str], tmp_path: Path, unique: str) -> MakeAgent:
    """Apply an agent with the get_weather tool on a deployment; return its name."""

    def make(model: str) -> str:
        name = f"chat-{model}-{unique}"
        path = tmp_path / f"{name}.yaml"
        path.write_text(AGENT.format(name=name, model=model))
        result = invoke(env, "agent", "apply", "-f", str(path))
        assert result.exit_code == 0, result.output
        return name

    return make


def test_chat_runs_functions_locally(env: dict[str, str], make_agent: MakeAgent) -> None:
    name = make_agent("weather-bot")
    result = invoke(
        env, "chat", name, "--functions", str(TOOLS), "--message", "What is the weather in Tokyo?"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "you> What is the weather in Tokyo?"
    assert lines[1] == "→ get_weather(city='Tokyo')"
    assert lines[2].startswith("← {") and '"temperature_c": 20' in lines[2]
    assert lines[3] == SUNNY
    assert result.stderr == ""


def test_chat_reads_turns_from_stdin(env: dict[str, str], make_agent: MakeAgent) -> None:
    name = make_agent("weather-bot")
    result = invoke(
        env,
        "chat",
        name,
        "--functions",
        str(TOOLS),
        input="hello there\n\nWhat is the weather in Tokyo?\n/exit\nnever sent\n",
    )
    assert result.exit_code == 0, result.output
    assert "How can I help with your trip?" in result.stdout
    assert result.stdout.count("→ get_weather(city='Tokyo')") == 1
    assert SUNNY in result.stdout
    assert "never sent" not in result.stdout


def test_chat_keeps_the_conversation(env: dict[str, str], make_agent: MakeAgent) -> None:
    """The echo deployment replies with everything it received: turn two sees turn one."""
    name = make_agent("echo")
    result = invoke(env, "chat", name, "-m", "the password is pineapple", "-m", "second turn")
    assert result.exit_code == 0, result.output
    second = result.stdout.split("you> second turn", 1)[1]
    assert "pineapple" in second


def test_chat_without_functions_reports_the_missing_implementation(
    env: dict[str, str],
    make_agent: MakeAgent,
) -> None:
    name = make_agent("weather-bot")
    result = invoke(env, "chat", name, "-m", "What is the weather in Tokyo?", "-m", "thanks")
    assert result.exit_code == 0, result.output
    assert "→ get_weather(city='Tokyo')" in result.stdout
    assert "there is no implementation" in result.stdout
    assert '← {"error": "function get_weather is not available"}' in result.stdout
    # The conversation stayed consistent: the next turn is answered normally.
    assert "How can I help with your trip?" in result.stdout


def test_chat_unknown_agent_is_a_one_line_error(env: dict[str, str], unique: str) -> None:
    result = invoke(env, "chat", f"nobody-{unique}", "-m", "hi")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: agent 'nobody-{unique}' not found"
    assert "Traceback" not in result.output


def test_chat_unknown_version_is_a_one_line_error(
    env: dict[str, str], make_agent: MakeAgent
) -> None:
    name = make_agent("echo")
    result = invoke(env, "chat", name, "--version", "9", "-m", "hi")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: version 9 of agent '{name}' not found"


def test_chat_failed_response_prints_its_error(env: dict[str, str], make_agent: MakeAgent) -> None:
    name = make_agent("unreachable")
    result = invoke(env, "chat", name, "-m", "hello")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


def test_chat_unreachable_server(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke({**env, "CUPOLA_ENDPOINT": url}, "chat", "anyone", "-m", "hi")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: cannot reach cupola at {url} (is `cupola serve` running?)"
    )


def test_chat_functions_file_that_does_not_load(
    env: dict[str, str],
    tmp_path: Path,
    make_agent: MakeAgent,
) -> None:
    name = make_agent("weather-bot")
    broken = tmp_path / "broken.py"
    broken.write_text("def get_weather(city):\n    return {\n")
    result = invoke(env, "chat", name, "--functions", str(broken), "-m", "weather?")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {broken}: cannot load: SyntaxError")
    assert len(result.stderr.strip().splitlines()) == 1


def test_chat_function_that_raises_is_reported_to_the_agent(
    env: dict[str, str],
    tmp_path: Path,
    make_agent: MakeAgent,
) -> None:
    name = make_agent("weather-bot")
    tools = tmp_path / "failing.py"
    tools.write_text("def get_weather(city):\n    raise RuntimeError('station offline')\n")
    result = invoke(env, "chat", name, "--functions", str(tools), "-m", "weather in Tokyo?")
    assert result.exit_code == 0, result.output
    assert '← {"error": "RuntimeError: station offline"}' in result.stdout


def test_chat_shows_the_tool_calls_the_platform_runs(server: LiveServer, unique: str) -> None:
    """An agent whose tools run on the platform (an MCP server over stdio): the chat shows
    each call and its result, then the reply."""
    example = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge"
    tool = {
        "type": "mcp",
        "server_label": "travel",
        "command": [sys.executable, str(example / "mcp_server.py")],
        "require_approval": "never",
    }
    agent = f"mcp-chat-{unique}"
    r = httpx.post(
        f"{server.project_url}/agents/{agent}/versions",
        json={"definition": {"model": "weather-bot", "tools": [tool]}},
    )
    assert r.status_code == 200, r.text
    result = CliRunner().invoke(
        cli,
        ["chat", agent, "-m", "What is the weather in Tokyo?"],
        env={"CUPOLA_ENDPOINT": server.url},
    )
    assert result.exit_code == 0, result.output
    assert "⇢ travel: get_weather(city='Tokyo')" in result.output
    assert '"temperature_c": 20' in result.output
    assert result.output.rstrip().endswith("It is sunny in Tokyo, twenty degrees.")
