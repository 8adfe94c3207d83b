"""Tool use of the embedded default: the 30-case set of ``bench/tooluse/cases.yaml``.

Each code tree to compare runs as its own ``cupola serve`` process (the ``local-small``
deployment, SmolLM2-135M on llama.cpp) and is asked through the Responses API with four
function tools, as an agent would be (``instructions``, ``tools``, temperature 0):

* 20 questions where one tool is clearly right and its argument is stated: did the model call
  the right tool, and with exactly that argument (case and surrounding spaces ignored)?
* 10 questions that need no tool: did it answer in text without calling one?
* the 20 follow-up turns (the question, the right call and the tool's JSON result): does the
  answer carry the result's key fact, and does it avoid echoing raw JSON?

Run: ``.venv/bin/python -m bench.bench_tooluse [--baseline /tmp/baseline/src]``. Each tree
(this one, and the baseline when given) prints per-case lines and totals; all land in
``bench/results/tooluse.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from openai import OpenAI

from bench.server import free_port, healthz_ok

HERE = Path(__file__).resolve().parent
CASES = HERE / "tooluse" / "cases.yaml"
RESULTS = HERE / "results" / "tooluse.json"
REPO_SRC = HERE.parent / "src"
CONFIG = """\
project: default
server:
  host: 127.0.0.1
deployments:
  - name: local-small
    provider: embedded
    threads: {threads}
"""
_JSON_ECHO = re.compile(r'[{\[]\s*"|"\s*:\s*["\d\[{]')


@dataclass
class CaseResult:
    kind: str
    """``tool``, ``no_tool`` or ``answer`` (the follow-up turn after the right call)."""
    question: str
    expected: str | None
    called: str | None = None
    arguments: str | None = None
    text: str = ""
    ok: bool = False
    exact: bool = False
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Run:
    label: str
    src: str
    cases: list[CaseResult] = field(default_factory=list)

    def totals(self) -> dict[str, str]:
        def count(kind: str, attr: str) -> str:
            of = [c for c in self.cases if c.kind == kind]
            return f"{sum(getattr(c, attr) for c in of)}/{len(of)}"

        return {
            "right_tool": count("tool", "ok"),
            "exact_argument": count("tool", "exact"),
            "no_tool": count("no_tool", "ok"),
            "answer_uses_result": count("answer", "ok"),
            "answer_without_json": count("answer", "exact"),
            "median_seconds_per_case": f"{statistics.median(c.seconds for c in self.cases):.2f}"
            if self.cases
            else "-",
        }


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def function_tools(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": t["name"],
            "description": t["description"],
            "parameters": {
                "type": "object",
                "properties": {
                    t["parameter"]: {"type": t.get("type", "string"), "description": t["about"]}
                },
                "required": [t["parameter"]],
                "additionalProperties": False,
            },
            "strict": True,
        }
        for t in spec["tools"]
    ]


def _first_call(response: Any) -> tuple[str | None, str | None, str]:
    call = next((i for i in response.output if i.type == "function_call"), None)
    text = response.output_text or ""
    return (call.name, call.arguments, text) if call else (None, None, text)


def ask(client: OpenAI, spec: dict[str, Any], label: str) -> list[CaseResult]:
    tools = function_tools(spec)
    params = {t["name"]: t["parameter"] for t in spec["tools"]}
    options: dict[str, Any] = {
        "model": "local-small",
        "instructions": spec["instructions"],
        "tools": tools,
        "temperature": 0,
        "max_output_tokens": 96,
        "store": False,
    }
    out: list[CaseResult] = []

    def run(result: CaseResult, body: Any) -> CaseResult:
        started = time.perf_counter()
        try:
            response = client.responses.create(input=body, **options)
        except Exception as exc:  # the server's error is the case's result
            result.error = str(exc)[:200]
        else:
            result.called, result.arguments, result.text = _first_call(response)
        result.seconds = round(time.perf_counter() - started, 2)
        return result

    for case in spec["tool_cases"]:
        result = run(CaseResult("tool", case["question"], case["tool"]), case["question"])
        result.ok = result.called == case["tool"]
        if result.ok and result.arguments:
            value = json.loads(result.arguments).get(params[case["tool"]])
            result.exact = str(value).strip().lower() == str(case["argument"]).lower()
        out.append(result)
        _print(label, result)
    for question in spec["no_tool_cases"]:
        result = run(CaseResult("no_tool", question, None), question)
        result.ok = result.called is None and result.error is None and bool(result.text.strip())
        out.append(result)
        _print(label, result)
    for n, case in enumerate(spec["tool_cases"]):
        tool, argument = case["tool"], case["argument"]
        shape = spec["results"][tool]
        value = json.loads(json.dumps(shape["result"]).replace("{argument}", str(argument)))
        call_id = f"call_bench{n}"
        body = [
            {"role": "user", "content": case["question"]},
            {
                "type": "function_call",
                "call_id": call_id,
                "name": tool,
                "arguments": json.dumps({params[tool]: argument}),
            },
            {"type": "function_call_output", "call_id": call_id, "output": json.dumps(value)},
        ]
        result = run(CaseResult("answer", case["question"], str(shape["fact"])), body)
        text = result.text
        result.ok = result.called is None and _norm(str(shape["fact"])) in _norm(text)
        result.exact = result.called is None and bool(text.strip()) and not _JSON_ECHO.search(text)
        out.append(result)
        _print(label, result)
    return out


def _print(label: str, r: CaseResult) -> None:
    if r.kind == "tool":
        mark = ("ok " if r.ok else "BAD") + (" exact" if r.exact else "      ")
        got = f"{r.called}({r.arguments})" if r.called else f"text {r.text[:40]!r}"
    elif r.kind == "no_tool":
        mark = "ok          " if r.ok else "BAD         "
        got = f"{r.called}({r.arguments})" if r.called else f"text {r.text[:40]!r}"
    else:
        mark = ("fact " if r.ok else "---- ") + ("clean  " if r.exact else "JSON?  ")
        got = f"{r.called}(...)" if r.called else repr(r.text[:70])
    if r.error:
        got = f"error {r.error[:70]}"
    print(f"[{label}] {r.kind:7} {mark} {r.seconds:5.1f}s  {r.question[:44]:44}  {got}", flush=True)


class Server:
    """``cupola serve`` from one source tree, on a fresh temp directory."""

    def __init__(self, src: Path, threads: int) -> None:
        self.src = src
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cupola-tooluse-"))
        (self.dir / "cupola.yaml").write_text(CONFIG.format(threads=threads))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUPOLA_")}
        env["PYTHONPATH"] = str(self.src)
        args = ["serve", "--config", str(self.dir / "cupola.yaml"), "--port", str(self.port)]
        log = (self.dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cupola.cli", *args],
            cwd=self.dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not healthz_ok(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.dir / "server.log").read_text(errors="replace"))
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure(label: str, src: Path, spec: dict[str, Any], threads: int) -> Run:
    run = Run(label, str(src))
    with Server(src, threads) as server:
        client = OpenAI(
            base_url=f"http://127.0.0.1:{server.port}/v1",
            api_key="unused",
            timeout=900,
            max_retries=0,
        )
        run.cases = ask(client, spec, label)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="src/ of the code to compare against")
    parser.add_argument("--label", default="this tree", help="name of this tree's run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="llama.cpp threads (1 is much faster on a machine others keep busy)",
    )
    args = parser.parse_args()
    spec = yaml.safe_load(CASES.read_text())
    runs = []
    if args.baseline:
        runs.append(measure("baseline", args.baseline.resolve(), spec, args.threads))
    runs.append(measure(args.label, REPO_SRC, spec, args.threads))
    print()
    for run in runs:
        totals = ", ".join(f"{k} {v}" for k, v in run.totals().items())
        print(f"{run.label:10} {totals}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = [
        {
            "label": r.label,
            "src": r.src,
            "totals": r.totals(),
            "cases": [asdict(c) for c in r.cases],
        }
        for r in runs
    ]
    args.out.write_text(
        json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": data}, indent=1
        )
    )
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
