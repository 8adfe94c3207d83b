"""``GET /metrics`` of a real ``cupola serve`` process matches the requests a test sent:
runs by status (completed and failed; Responses, streamed, Chat Completions, Anthropic
Messages, an agent's), durations and times to first token, tokens and their estimated cost
(the deployment's prices in cupola.yaml), server-side tool calls by tool and outcome (one
that answers, one whose API is down)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from live_server import free_port, serve_process
from loopback import serve_app

IN_PRICE, OUT_PRICE = 2.5, 10.0
SCRIPT = [
    {"match": '"host"', "reply": "Your headers arrived."},
    {"match": "(?i)^hello", "reply": "Hi there, how can I help?"},
    {
        "match": "(?i)^show my headers",
        "tool_calls": [{"name": "echo_echoHeaders", "arguments": {}}],
    },
    {
        "match": "(?i)^call the dead api",
        "tool_calls": [{"name": "dead_echoHeaders", "arguments": {}}],
    },
    {"match": "(?i)error|refused|connect|fail", "reply": "The tool failed."},
]
RunKey = tuple[str, str, str]  # agent, agent version, deployment


@pytest.fixture(scope="module")
def echo_api() -> Iterator[str]:
    """An API that answers with the headers it received."""

    async def headers(request: Request) -> Response:
        return JSONResponse(dict(request.headers))

    app = Starlette(routes=[Route("/headers", headers, methods=["GET"])])
    with serve_app(app, "echo-api") as port:
        yield f"http://127.0.0.1:{port}"


def openapi_tool(name: str, base_url: str) -> dict[str, Any]:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": name, "version": "1"},
        "servers": [{"url": base_url}],
        "paths": {"/headers": {"get": {"operationId": "echoHeaders"}}},
    }
    return {
        "type": "openapi",
        "openapi": {"name": name, "spec": spec, "auth": {"type": "anonymous"}},
    }


def write_config(path: Path, database_url: str) -> Path:
    config = {
        "project": "default",
        "database_url": database_url,
        "data_dir": str(path / "data"),
        "deployments": [
            {
                "name": "priced-bot",
                "provider": "scripted",
                "mode": "script",
                "script": SCRIPT,
                "input_price_per_million": IN_PRICE,
                "output_price_per_million": OUT_PRICE,
            },
            {"name": "free-echo", "provider": "scripted"},
        ],
        "telemetry": {"enabled": False},  # metrics do not need tracing
    }
    file = path / "cupola.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of ``/metrics``, by sample name."""
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for ls, v in samples.get(name, []) if labels.items() <= ls.items())


class Sent:
    """What the test sent and was answered, per (agent, version, deployment)."""

    def __init__(self) -> None:
        self.runs: Counter[tuple[RunKey, str]] = Counter()
        self.tokens: Counter[tuple[RunKey, str]] = Counter()
        self.calls: Counter[RunKey] = Counter()  # successful model calls

    def record(self, key: RunKey, status: str, usage: dict[str, Any] | None, calls: int) -> None:
        self.runs[key, status] += 1
        if usage:
            self.tokens[key, "input"] += usage.get("input_tokens", usage.get("prompt_tokens", 0))
            self.tokens[key, "output"] += usage.get(
                "output_tokens", usage.get("completion_tokens", 0)
            )
        self.calls[key] += calls


def respond(url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/responses", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def send_traffic(url: str, echo_api: str, agent: str) -> Sent:
    sent = Sent()
    bot: RunKey = ("", "", "priced-bot")
    for _ in range(3):
        b = respond(url, {"model": "priced-bot", "input": "hello"})
        assert b["status"] == "completed", b
        sent.record(bot, "completed", b["usage"], 1)
    for _ in range(2):  # no step of the script fits: the model call fails
        b = respond(url, {"model": "priced-bot", "input": "zzz"})
        assert b["status"] == "failed" and b["error"]["code"] == "script_mismatch", b
        sent.record(bot, "failed", b["usage"], 0)
    tools = [
        openapi_tool("echo", echo_api),
        openapi_tool("dead", f"http://127.0.0.1:{free_port()}"),
    ]
    b = respond(url, {"model": "priced-bot", "input": "show my headers", "tools": tools})
    assert b["status"] == "completed" and b["output"][-1]["content"][0]["text"].startswith("Your")
    sent.record(bot, "completed", b["usage"], 2)
    b = respond(url, {"model": "priced-bot", "input": "call the dead api", "tools": tools})
    assert b["status"] == "completed", b
    assert b["output"][-1]["content"][0]["text"] == "The tool failed.", b
    sent.record(bot, "completed", b["usage"], 2)
    # streamed, with store off
    with httpx.stream(
        "POST",
        f"{url}/v1/responses",
        json={"model": "priced-bot", "input": "hello", "stream": True, "store": False},
        timeout=30,
    ) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    done = yaml.safe_load(events[-1][6:])  # JSON is YAML
    assert done["type"] == "response.completed", done
    sent.record(bot, "completed", done["response"]["usage"], 1)
    # Chat Completions
    c = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "priced-bot", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    assert c.status_code == 200, c.text
    sent.record(bot, "completed", c.json()["usage"], 1)
    # Anthropic Messages
    m = httpx.post(
        f"{url}/anthropic/v1/messages",
        json={
            "model": "priced-bot",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}],
        },
        timeout=30,
    )
    assert m.status_code == 200, m.text
    sent.record(bot, "completed", m.json()["usage"], 1)
    # an agent's run, on the unpriced deployment
    created = httpx.post(
        f"{url}/api/projects/default/agents/{agent}/versions",
        json={"definition": {"kind": "prompt", "model": "free-echo", "instructions": "Echo."}},
    )
    assert created.status_code == 200, created.text
    for _ in range(2):
        b = respond(
            url, {"input": "hi", "agent_reference": {"type": "agent_reference", "name": agent}}
        )
        assert b["status"] == "completed", b
        sent.record((agent, "1", "free-echo"), "completed", b["usage"], 1)
    return sent


def test_metrics_match_the_requests_sent(database_url: str, echo_api: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database_url)
    agent = f"metered-{free_port()}"
    with serve_process(config, output=tmp_path / "serve.log") as (url, _proc):
        before = scrape(url)
        assert value(before, "cupola_runs_total") == 0
        sent = send_traffic(url, echo_api, agent)
        deadline = time.monotonic() + 10
        while True:  # a streamed run ends a moment after its last event
            samples = scrape(url)
            if value(samples, "cupola_runs_total") == sum(sent.runs.values()):
                break
            assert time.monotonic() < deadline, samples.get("cupola_runs_total")
            time.sleep(0.05)
        project = scrape(url.rstrip("/") + "/api/projects/default")
        assert value(project, "cupola_runs_total") == sum(sent.runs.values())

    runs = {
        ((ls["agent"], ls["agent_version"], ls["deployment"]), ls["status"]): v
        for ls, v in samples["cupola_runs_total"]
    }
    assert runs == {k: float(n) for k, n in sent.runs.items()}
    assert all(ls["project"] == "default" for ls, _ in samples["cupola_runs_total"])
    for key in {k for k, _ in sent.runs}:
        agent_name, version, deployment = key
        labels = {"agent": agent_name, "agent_version": version, "deployment": deployment}
        count = sum(n for (k, _), n in sent.runs.items() if k == key)
        assert value(samples, "cupola_run_duration_seconds_count", **labels) == count
        assert value(samples, "cupola_run_duration_seconds_sum", **labels) > 0
        assert value(samples, "cupola_run_duration_seconds_bucket", le="+Inf", **labels) == count
        ttft = value(samples, "cupola_time_to_first_token_seconds_count", **labels)
        assert ttft == sent.calls[key], key
        for kind in ("input", "output"):
            got = value(samples, "cupola_tokens_total", type=kind, **labels)
            assert got == sent.tokens[key, kind] > 0, (key, kind)
    bot = ("", "", "priced-bot")
    cost = (sent.tokens[bot, "input"] * IN_PRICE + sent.tokens[bot, "output"] * OUT_PRICE) / 1e6
    assert value(samples, "cupola_cost_usd_total", deployment="priced-bot") == pytest.approx(cost)
    assert value(samples, "cupola_cost_usd_total", deployment="free-echo") == 0
    tools = {(ls["tool"], ls["outcome"]): v for ls, v in samples["cupola_tool_calls_total"]}
    assert tools == {("echo_echoHeaders", "completed"): 1.0, ("dead_echoHeaders", "failed"): 1.0}
    # bounded labels: no response ids anywhere
    names = {k for ls, _ in sum(samples.values(), []) for k in ls}
    assert names <= {"project", "agent", "agent_version", "deployment", "status", "type", "le"} | {
        "tool",
        "outcome",
    }
