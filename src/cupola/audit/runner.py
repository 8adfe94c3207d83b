"""Read the prompts CSV and replay it against two deployments of a cupola server.

Each call is one non-streaming Responses request (``POST .../openai/v1/responses`` with
``model``, ``instructions`` = the system prompt, ``input`` = the user prompt, ``store: false``
and, for ``json_schema`` rows, ``text.format``), so the audit needs nothing but the server.
Latency is measured here, around the whole HTTP exchange; output tokens come from ``usage``.
A call that fails (HTTP error, failed response, timeout) is recorded in its row, never raised.
"""

from __future__ import annotations

import asyncio
import csv
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cupola.audit.checks import ExpectationError, expectation
from cupola.audit.report import Call, Prompt, Report, RowResult, Side

REQUIRED_COLUMNS = ("id", "system", "user")
OPTIONAL_COLUMNS = ("format", "schema", "pattern")
CALL_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""A local model on a small machine can take minutes on a long prompt."""
_FORMAT_NAME = re.compile(r"[^A-Za-z0-9_-]")


class PromptFileError(ValueError):
    """The prompts file cannot be used; the message names the file, line and prompt."""


def load_prompts(path: Path) -> list[Prompt]:
    """Every row of the CSV, validated: required columns, unique non-empty ids, a user
    prompt, and a usable format/schema/pattern. Raise PromptFileError on the first problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PromptFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"{path}: cannot read: {exc}") from None
    return parse_prompts(text.splitlines(keepends=True), str(path))


def parse_prompts(lines: list[str], name: str) -> list[Prompt]:
    """The prompts of CSV text (``name`` is the file, for messages)."""
    reader = csv.DictReader(lines, restkey="\0extra")
    try:
        header = reader.fieldnames
        if not header:
            raise PromptFileError(f"{name}: empty file (the header needs id, system, user)")
        columns = [c.strip() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise PromptFileError(
                f"{name}: missing column(s) {', '.join(missing)} "
                f"(the header has: {', '.join(columns) or 'nothing'})"
            )
        reader.fieldnames = columns
        prompts: list[Prompt] = []
        seen: set[str] = set()
        start = reader.line_num + 1
        for raw in reader:
            prompts.append(_prompt(raw, start, name, seen))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise PromptFileError(f"{name} line {reader.line_num}: not valid CSV: {exc}") from None
    if not prompts:
        raise PromptFileError(f"{name}: no prompts (only a header)")
    return prompts


def _prompt(raw: dict[str, Any], line: int, name: str, seen: set[str]) -> Prompt:
    def cell(column: str) -> str:
        value = raw.get(column)
        return value if isinstance(value, str) else ""

    prompt_id = cell("id").strip()
    where = f"{name} line {line}" + (f" (id {prompt_id!r})" if prompt_id else "")
    if "\0extra" in raw:
        raise PromptFileError(
            f"{where}: more fields than the header has (quote fields that contain commas)"
        )
    if not prompt_id:
        raise PromptFileError(f"{where}: id is empty")
    if prompt_id in seen:
        raise PromptFileError(f"{where}: id {prompt_id!r} is used by an earlier row")
    seen.add(prompt_id)
    if not cell("user").strip():
        raise PromptFileError(f"{where}: user is empty")
    try:
        expect = expectation(cell("format"), cell("schema"), cell("pattern"))
    except ExpectationError as exc:
        raise PromptFileError(f"{where}: {exc}") from None
    return Prompt(prompt_id, cell("system"), cell("user"), expect, line)


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """How to replay: calls per prompt and side, calls in flight, output token cap."""

    repeat: int = 1
    concurrency: int = 4
    max_tokens: int | None = None


def request_body(prompt: Prompt, deployment: str, max_tokens: int | None) -> dict[str, Any]:
    """The Responses request for one prompt on one deployment."""
    body: dict[str, Any] = {
        "model": deployment,
        "input": prompt.user,
        "store": False,
        "stream": False,
    }
    if prompt.system:
        body["instructions"] = prompt.system
    if max_tokens is not None:
        body["max_output_tokens"] = max_tokens
    schema = prompt.expect.schema
    if prompt.expect.kind == "json_schema" and schema is not None:
        body["text"] = {
            "format": {
                "type": "json_schema",
                "name": _FORMAT_NAME.sub("_", prompt.id)[:64] or "prompt_audit",
                "schema": schema,
                "strict": True,
            }
        }
    return body


def output_text(response: dict[str, Any]) -> str:
    """The text of a response's message items."""
    return "".join(
        str(part.get("text", ""))
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") in ("output_text", None)
    )


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or "")
        if message:
            return f"HTTP {response.status_code}: {' '.join(message.split())}"
    return f"HTTP {response.status_code}: {' '.join(response.text.split())[:200]}"


def _transport_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return " ".join(str(exc).split()) or type(exc).__name__


class Replayer:
    """Replays prompts on two deployments through one HTTP client, a bounded number of calls
    at a time. Calls go out in prompt order, baseline and candidate of a prompt next to each
    other, so load from concurrent calls falls on both sides alike."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        options: AuditOptions,
        on_call: Callable[[], None] | None = None,
    ) -> None:
        self.http = http
        self.options = options
        self.on_call = on_call

    async def call(self, prompt: Prompt, deployment: str) -> Call:
        """One request; the outcome, with the client-side latency in milliseconds."""
        body = request_body(prompt, deployment, self.options.max_tokens)
        started = time.perf_counter()
        try:
            response = await self.http.post("/openai/v1/responses", json=body)
        except httpx.HTTPError as exc:
            return Call(_elapsed(started), error=_transport_error(exc))
        latency = _elapsed(started)
        if response.status_code >= 400:
            return Call(latency, error=_error_message(response))
        try:
            data = response.json()
        except ValueError:
            return Call(latency, error="the server's answer is not JSON")
        if not isinstance(data, dict):
            return Call(latency, error="the server's answer is not a response object")
        status = data.get("status")
        if status not in ("completed", "incomplete"):
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            message = str((error or {}).get("message") or f"the response is {status}")
            return Call(latency, error=" ".join(message.split()))
        text = output_text(data)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        tokens = (usage or {}).get("output_tokens")
        return Call(
            latency,
            text=text,
            output_tokens=tokens if isinstance(tokens, int) else None,
            check=prompt.expect.check(text),
            cut_short=status == "incomplete",
        )

    async def run(self, prompts: list[Prompt], baseline: str, candidate: str) -> list[RowResult]:
        """Every prompt, ``repeat`` times on each side; the results in prompt order."""
        deployments: dict[Side, str] = {"baseline": baseline, "candidate": candidate}
        sides: tuple[Side, Side] = ("baseline", "candidate")
        jobs = [
            (index, side, attempt)
            for index in range(len(prompts))
            for attempt in range(self.options.repeat)
            for side in sides
        ]
        pending = iter(jobs)  # shared by the workers; next() never awaits, so no race
        results: dict[tuple[int, Side, int], Call] = {}

        async def worker() -> None:
            for index, side, attempt in pending:
                call = await self.call(prompts[index], deployments[side])
                results[(index, side, attempt)] = call
                if self.on_call is not None:
                    self.on_call()

        await asyncio.gather(*(worker() for _ in range(max(1, self.options.concurrency))))
        rows = [RowResult(p) for p in prompts]
        for index, side, attempt in jobs:
            rows[index].side(side).calls.append(results[(index, side, attempt)])
        return rows


def _elapsed(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


async def run_audit(
    http: httpx.AsyncClient,
    prompts: list[Prompt],
    baseline: str,
    candidate: str,
    options: AuditOptions,
    on_call: Callable[[], None] | None = None,
) -> Report:
    """Replay the prompts and gather the report (tolerance and source are the caller's)."""
    rows = await Replayer(http, options, on_call).run(prompts, baseline, candidate)
    return Report(
        baseline=baseline,
        candidate=candidate,
        rows=rows,
        repeat=options.repeat,
        max_tokens=options.max_tokens,
    )
