"""``cupola diff PROMPTS.csv``: the prompt audit of the GPT-5 migration guide (section 10).

Replays every system+user prompt of a CSV on a baseline and a candidate deployment of the
server, and reports per prompt and in total: format compliance, output-token delta, latency
p50/p95 and whether the outputs are identical; as a terminal summary, a TSV and an HTML page.
``--fail-on`` turns the totals into a CI gate (exit status 1 when breached).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cupola.audit.report import (
    DEFAULT_TOLERANCE_PCT,
    Prompt,
    Report,
    Summary,
    gate_failures,
    summary_rows,
    write_html,
    write_tsv,
)
from cupola.audit.runner import (
    CALL_TIMEOUT,
    AuditOptions,
    PromptFileError,
    load_prompts,
    run_audit,
)
from cupola.cli.client import (
    API_VERSION,
    CliError,
    CupolaClient,
    connection_options,
    one_line_errors,
    settings_for,
)
from cupola.settings import Settings


class InputError(CliError):
    """Bad input (the prompts file, an option, a deployment name): exit status 2."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Gates:
    """The ``--fail-on`` conditions."""

    compliance: bool = False
    tokens_pct: float | None = None
    errors: bool = False


def parse_gates(values: tuple[str, ...]) -> Gates:
    """The gates of ``--fail-on`` values: ``compliance``, ``tokens=PCT``, ``errors``."""
    compliance = errors = False
    tokens: float | None = None
    for value in values:
        name, _, arg = value.strip().partition("=")
        if name == "compliance" and not arg:
            compliance = True
        elif name == "errors" and not arg:
            errors = True
        elif name == "tokens":
            try:
                tokens = float(arg.strip().rstrip("%"))
            except ValueError:
                tokens = None
            if tokens is None or tokens < 0 or tokens != tokens:
                raise InputError(f"--fail-on tokens needs a percentage, e.g. tokens=20: {value!r}")
        else:
            raise InputError(f"--fail-on {value!r}: expected compliance, tokens=PCT or errors")
    return Gates(compliance, tokens, errors)


def check_deployments(client: CupolaClient, *names: str) -> None:
    """Fail before any call when the server does not offer a deployment."""
    offered = [str(d.get("name")) for d in client.get("/deployments").get("value") or []]
    for name in names:
        if name not in offered:
            raise InputError(
                f"unknown deployment {name!r} (the server has: {', '.join(offered) or 'none'})"
            )


def _http(settings: Settings, concurrency: int) -> httpx.AsyncClient:
    headers = {"user-agent": "cupola-cli"}
    if settings.api_key:
        headers["authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    return httpx.AsyncClient(
        base_url=f"{settings.cli_endpoint}/api/projects/{settings.project}",
        headers=headers,
        params={"api-version": API_VERSION},
        timeout=CALL_TIMEOUT,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def _replay(
    settings: Settings, prompts: list[Prompt], baseline: str, candidate: str, options: AuditOptions
) -> Report:
    total = len(prompts) * options.repeat * 2
    async with _http(settings, options.concurrency) as http:
        if not sys.stderr.isatty():
            return await run_audit(http, prompts, baseline, candidate, options)
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(f"{baseline} vs {candidate}", total=total)
            return await run_audit(
                http, prompts, baseline, candidate, options, lambda: progress.advance(task)
            )


def print_summary(report: Report, summary: Summary) -> None:
    """The totals as a table, then identical and over-tolerance prompts."""
    console = Console(highlight=False)
    table = Table(title=f"prompt audit: {summary.rows} prompts", title_justify="left")
    table.add_column("")
    table.add_column(f"{report.baseline} (baseline)", justify="right")
    table.add_column(f"{report.candidate} (candidate)", justify="right")
    table.add_column("delta", justify="right")
    for metric, base, cand, delta in summary_rows(summary):
        table.add_row(metric, base, cand, delta)
    console.print(table)
    click.echo(f"identical: {summary.identical} of {summary.rows} prompts")
    over = summary.over_tolerance
    line = f"over +{summary.tolerance_pct:g}% output tokens: {len(over)} prompt(s)"
    click.echo(line + (f": {', '.join(over)}" if over else ""))
    failed = [r.prompt.id for r in report.rows if r.baseline.errors or r.candidate.errors]
    if failed:
        click.echo(f"failed calls in: {', '.join(failed)} (see the error columns)")


def _write(report: Report, tsv: Path | None, html: Path | None) -> None:
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        if tsv is not None:
            write_tsv(report, tsv)
            click.echo(f"wrote {tsv}")
        if html is not None:
            write_html(report, html, generated)
            click.echo(f"wrote {html}")
    except OSError as exc:
        raise CliError(f"cannot write the report: {exc.strerror or exc}: {exc.filename}") from None


def register(cli: click.Group) -> None:
    @cli.command("diff")
    @click.argument("prompts", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--baseline", required=True, help="Deployment the prompts run on today.")
    @click.option("--candidate", required=True, help="Deployment to compare with it.")
    @click.option("--tsv", type=click.Path(dir_okay=False, path_type=Path), help="Write a TSV.")
    @click.option(
        "--html", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report."
    )
    @click.option(
        "--repeat",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Calls per prompt and deployment.",
    )
    @click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=4,
        show_default=True,
        help="Calls in flight at once (1 for latency free of contention).",
    )
    @click.option(
        "--max-tokens", type=click.IntRange(min=1), help="max_output_tokens of every call."
    )
    @click.option(
        "--fail-on",
        "fail_on",
        multiple=True,
        metavar="GATE",
        help="Exit 1 when breached: compliance (candidate below baseline), tokens=PCT "
        "(total output tokens over +PCT%), errors (any failed call). Repeatable.",
    )
    @connection_options
    @one_line_errors
    def diff(
        prompts: Path,
        baseline: str,
        candidate: str,
        tsv: Path | None,
        html: Path | None,
        repeat: int,
        concurrency: int,
        max_tokens: int | None,
        fail_on: tuple[str, ...],
        config: Path | None,
        endpoint: str | None,
    ) -> None:
        """Replay PROMPTS (CSV: id, system, user[, format, schema, pattern]) on two
        deployments; compare format compliance, output tokens, latency and text."""
        gates = parse_gates(fail_on)
        try:
            rows = load_prompts(prompts)  # every row is valid before anything is sent
        except PromptFileError as exc:
            raise InputError(str(exc)) from None
        settings = settings_for(config, endpoint)
        with CupolaClient.from_settings(settings) as client:
            check_deployments(client, baseline, candidate)
        options = AuditOptions(repeat=repeat, concurrency=concurrency, max_tokens=max_tokens)
        report = asyncio.run(_replay(settings, rows, baseline, candidate, options))
        report.tolerance_pct = (
            gates.tokens_pct if gates.tokens_pct is not None else DEFAULT_TOLERANCE_PCT
        )
        report.source = prompts.name
        summary = report.summary()
        print_summary(report, summary)
        _write(report, tsv, html)
        failures = gate_failures(
            summary,
            compliance=gates.compliance,
            tokens_pct=gates.tokens_pct,
            errors=gates.errors,
        )
        for failure in failures:
            click.echo(f"gate failed: {failure}", err=True)
        if failures:
            raise SystemExit(1)
