"""The console in real Chromium against ``cupola serve``: the playground streams a reply and
shows a tool call, the agents page diffs two versions, the keyboard reaches the chat box, and
a key is asked for when the server needs one (an in-process server: a second ``cupola serve``
would double the module's time)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cupola.domain import Role
from live_server import free_port, make_settings, serve_process, start_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "travel-concierge"

CONFIG = """\
project: default
data_dir: {data}
database_url: sqlite:///{data}/cupola.db
default_deployment: echo
deployments:
  - name: echo
    provider: scripted
    mode: echo
  - name: weather-bot
    provider: scripted
    mode: script
    script:
      - match: '"temperature_c"'
        reply: It is sunny in Tokyo, twenty degrees.
      - match: (?i)weather
        tool_calls: [{{name: get_weather, arguments: {{city: Tokyo}}}}]
      - reply: How can I help with your trip?
"""
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
SHOTS = os.environ.get("CUPOLA_CONSOLE_SCREENSHOTS")
"""A directory to save the docs' screenshots in (docs/images), when set."""


CONTRAST = (Path(__file__).parent / "contrast.js").read_text()


def assert_readable(page: Any) -> None:
    """Every visible text meets WCAG AA contrast (tests/console/contrast.js)."""
    found = page.evaluate(CONTRAST)
    assert found["checked"] > 5 and found["failing"] == [], (page.url, found["failing"])


def shot(page: Any, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"))


def write_config(directory: Path, extra: str = "") -> Path:
    data = directory / "data"
    data.mkdir()
    config = directory / "cupola.yaml"
    config.write_text(CONFIG.format(data=data) + extra)
    return config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``cupola serve`` on loopback with no key needed, and an agent with two versions."""
    config = write_config(tmp_path_factory.mktemp("console"))
    with serve_process(config) as (url, _proc):
        for instructions, temperature in (
            ("You help travellers.\nAnswer in one sentence.", 1.0),
            ("You help travellers plan trips.\nAnswer in one sentence.", 0.3),
        ):
            made = httpx.post(
                f"{url}/api/projects/default/agents/concierge/versions",
                json={
                    "description": "Travel help",
                    "definition": {
                        "kind": "prompt",
                        "model": "weather-bot",
                        "instructions": instructions,
                        "temperature": temperature,
                        "tools": [WEATHER_TOOL],
                    },
                },
            )
            assert made.status_code == 200, made.text
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def test_playground_streams_the_reply_and_shows_the_tool_call(served: str, page: Any) -> None:
    page.goto(f"{served}/console/playground")
    page.select_option("#target", "agent:concierge")
    page.fill("#message", "What is the weather in Tokyo?")
    page.click("#send")
    call = page.locator("#log article[data-type=function_call]")
    call.wait_for()
    assert "get_weather" in call.inner_text()
    assert '"city": "Tokyo"' in call.locator("pre").inner_text()
    # the text of the next turn as it grows, delta by delta
    page.evaluate(
        """() => { window.seen = []; new MutationObserver(() => {
             const t = [...document.querySelectorAll('#log .turn.assistant .text')].pop();
             if (t) window.seen.push(t.textContent); })
           .observe(document.getElementById('log'),
                    {subtree: true, childList: true, characterData: true}); }"""
    )
    page.get_by_label("Output of get_weather").fill('{"temperature_c": 20, "sky": "clear"}')
    shot(page, "playground")
    page.get_by_role("button", name="Send output").click()
    reply = page.locator("#log .turn.assistant .text").last
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('completed')"
    )
    assert reply.inner_text() == "It is sunny in Tokyo, twenty degrees."
    seen: list[str] = page.evaluate("window.seen")
    partial = [s for s in seen if s and s != "It is sunny in Tokyo, twenty degrees."]
    assert partial and "It is sunny in Tokyo, twenty degrees.".startswith(partial[0]), seen
    shot(page, "playground")
    # each turn links to its stored response, which shows the same output
    link = page.locator("#log .turn.assistant .meta a").filter(has_text="Response").last
    response_id = link.inner_text().removeprefix("Response ")
    link.click()
    page.wait_for_url(f"**/console/responses/{response_id}")
    assert "It is sunny in Tokyo, twenty degrees." in page.locator("main").inner_text()
    assert "function_call_output" not in page.locator("h1").inner_text()
    shot(page, "response")
    # the browse page lists it among this browser's recent responses
    page.goto(f"{served}/console/conversations")
    assert page.locator(f"#recent a:text('{response_id}')").count() == 1


@pytest.fixture(scope="module")
def travel_mcp() -> Iterator[str]:
    """The example's travel MCP server over streamable HTTP, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "mcp_server.py"), "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "no MCP server"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_playground_asks_for_mcp_approval_inline(served: str, travel_mcp: str, page: Any) -> None:
    tool = {
        "type": "mcp",
        "server_label": "travel",
        "server_url": travel_mcp,
        "require_approval": "always",
    }
    made = httpx.post(
        f"{served}/api/projects/default/agents/careful/versions",
        json={"definition": {"kind": "prompt", "model": "weather-bot", "tools": [tool]}},
    )
    assert made.status_code == 200, made.text
    page.goto(f"{served}/console/playground?target=agent:careful:1")
    page.fill("#message", "What is the weather in Tokyo?")
    page.click("#send")
    request = page.locator("#log article[data-type=mcp_approval_request]")
    request.wait_for()
    assert "travel.get_weather" in request.inner_text()
    assert "get_hotel_info" in page.locator("#log article[data-type=mcp_list_tools]").inner_text()
    shot(page, "approval")
    request.get_by_role("button", name="Approve").click()
    call = page.locator("#log article[data-type=mcp_call]")
    call.wait_for()
    assert "travel.get_weather" in call.inner_text() and "temperature_c" in call.inner_text()
    page.wait_for_function(
        "() => document.querySelectorAll('#log .turn.assistant .meta').length == 2"
    )
    reply = page.locator("#log .turn.assistant .text").last
    assert reply.inner_text() == "It is sunny in Tokyo, twenty degrees."


def test_a_playground_turn_opens_its_trace_as_a_waterfall(served: str, page: Any) -> None:
    """Needs the traces API (cupola.telemetry); skipped on a tree without it."""
    if httpx.get(f"{served}/api/projects/default/traces").status_code == 404:
        pytest.skip("this tree has no traces API")
    page.goto(f"{served}/console/playground?target=agent:concierge")
    page.fill("#message", "What is the weather in Tokyo?")
    page.click("#send")
    page.locator("#log article[data-type=function_call]").wait_for()
    page.get_by_label("Output of get_weather").fill('{"temperature_c": 20}')
    page.get_by_role("button", name="Send output").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#log .turn.assistant .meta').length == 2"
    )
    trace = page.locator("#log .turn.assistant .meta a", has_text="Trace").last
    href = trace.get_attribute("href")
    deadline = time.monotonic() + 15
    page.goto(f"{served}{href}")
    while "/console/traces/" not in page.url:  # spans are written a moment after the run
        assert time.monotonic() < deadline, page.locator("main").inner_text()
        time.sleep(0.3)
        page.goto(f"{served}{href}")
    names = page.locator(".waterfall .span-name").all_inner_texts()
    assert names[0].startswith("invoke_agent") and any(n.startswith("chat") for n in names)
    assert page.locator(".waterfall .depth-1").count() >= 1
    shot(page, "trace")
    first = page.locator(".waterfall summary").first
    first.focus()
    page.keyboard.press("Enter")  # the span's attributes open from the keyboard
    assert "gen_ai" in page.locator(".waterfall details[open]").first.inner_text()
    assert_readable(page)
    page.goto(f"{served}/console/traces?agent_name=concierge")
    assert page.locator("main table tbody tr").count() >= 2
    assert_readable(page)


def test_agents_page_diffs_two_versions(served: str, page: Any) -> None:
    page.goto(f"{served}/console/agents")
    page.get_by_role("link", name="concierge").click()
    main = page.locator("main")
    assert "get version 2" in main.inner_text()  # the default: the latest version
    page.select_option("#from", "1")
    page.select_option("#to", "2")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r".*/diff\?from=1&to=2$"))
    removed = page.locator(".diff .removed").all_inner_texts()
    added = page.locator(".diff .added").all_inner_texts()
    assert any("You help travellers." in line for line in removed), removed
    assert any("You help travellers plan trips." in line for line in added), added
    temperature = page.locator("tr.changed", has_text="temperature")
    assert "0.3" in temperature.inner_text() and "1.0" in temperature.inner_text()
    assert page.locator("tr.changed", has_text="model").count() == 0
    shot(page, "agent-diff")


def test_every_page_has_readable_contrast(served: str, page: Any) -> None:
    for path in (
        "playground",
        "agents",
        "agents/concierge",
        "agents/concierge/diff?from=1&to=2",
        "deployments",
        "toolboxes",
        "conversations",
        "agents/nobody",
    ):
        page.goto(f"{served}/console/{path}")
        assert_readable(page)
    page.goto(f"{served}/console/playground?target=agent:concierge")
    page.fill("#message", "weather in Tokyo?")
    page.click("#send")
    page.locator("#log .meta a").first.wait_for()
    assert_readable(page)  # the chat, its tool call and the output form
    page.locator("#log .meta a").first.click()
    page.wait_for_url("**/console/responses/*")
    assert_readable(page)


def test_keyboard_reaches_the_chat_box_and_the_send_button(served: str, page: Any) -> None:
    page.goto(f"{served}/console/playground?target=model:echo")
    reached: list[str] = []
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.tagName")
        reached.append(focused)
        if focused == "message":
            break
    assert reached[-1] == "message", reached
    page.keyboard.type("hello from the keyboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('completed')"
    )
    assert "hello from the keyboard" in page.locator("#log .turn.assistant").last.inner_text()
    # Ctrl+Enter in the box sends too
    page.focus("#message")
    page.keyboard.type("second turn")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.querySelectorAll('#log .turn.assistant').length == 2")


def test_a_key_is_asked_for_when_the_server_needs_one(
    database_url: str, browser: Any, unique: str
) -> None:
    live = start_server(
        make_settings(database_url, auth={"required": "always", "key_cache_seconds": 0})
    )
    store = live.services.store
    _key, reader = store.create_key_sync(f"reader-{unique}", "default", Role.READER)
    _key, user = store.create_key_sync(f"user-{unique}", "default", Role.USER)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    url = live.url
    try:
        page.goto(f"{url}/console/agents")
        assert "/console/login" in page.url
        page.get_by_label("API key").fill("cpl-not-a-key")
        page.get_by_role("button", name="Sign in").click()
        assert "valid API key" in page.locator("[role=alert]").inner_text()
        assert_readable(page)
        shot(page, "login")
        page.get_by_label("API key").fill(reader)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/console/agents")
        cookie = next(c for c in context.cookies() if c["name"] == "cupola_console_key")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # page scripts never see the key
        # a reader may read, not run: the API's role rules apply to the playground
        page.goto(f"{url}/console/playground?target=model:echo")
        page.fill("#message", "hi")
        page.click("#send")
        refusal = page.locator("#log .error")
        refusal.wait_for()
        assert "needs the user role" in refusal.inner_text()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/console/login"))
        page.goto(f"{url}/console/agents")
        assert "/console/login" in page.url  # signed out: the key is gone
        page.get_by_label("API key").fill(user)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{url}/console/playground?target=model:echo")
        page.fill("#message", "hi")
        page.click("#send")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('completed')"
        )
    finally:
        context.close()
        live.stop()
