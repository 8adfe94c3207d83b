"""The prompt-audit report: per-prompt results on two deployments, totals, TSV and HTML.

A row replays one prompt ``repeat`` times on each side. Per side it records every call
(text, output tokens, client-side latency, format verdict, error). From those:

- compliance: calls whose output passes the row's format check, of the calls made on rows
  that have a format (a failed call counts as not compliant: the downstream parser got
  nothing);
- tokens: the mean output tokens of a row's successful calls; the token delta of a row (and in
  total, summed over rows where both sides answered) is ``(candidate - baseline) / baseline``;
  a row over ``tolerance_pct`` (the seed's +20% by default) is flagged;
- latency: p50 and p95 over every successful call of a side (linear interpolation between
  ranks, as numpy's default);
- identical: every call on both sides returned the same text, surrounding whitespace aside.
"""

from __future__ import annotations

import csv
import html
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cupola.audit.checks import CheckResult, Expectation

DEFAULT_TOLERANCE_PCT = 20.0
"""The seed's token-cost tolerance: beyond +20% a prompt is a candidate for verbosity=low."""

TSV_COLUMNS = [
    "id",
    "format",
    "calls",
    "baseline_first80",
    "candidate_first80",
    "baseline_pass",
    "candidate_pass",
    "baseline_check",
    "candidate_check",
    "baseline_tokens",
    "candidate_tokens",
    "token_delta_pct",
    "over_tolerance",
    "baseline_latency_ms",
    "candidate_latency_ms",
    "identical",
    "baseline_cut_short",
    "candidate_cut_short",
    "baseline_error",
    "candidate_error",
]

Side = Literal["baseline", "candidate"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """One row of the prompts CSV."""

    id: str
    system: str
    user: str
    expect: Expectation = field(default_factory=Expectation)
    line: int = 0
    """The CSV line the row starts on, for messages."""


@dataclass(frozen=True, slots=True)
class Call:
    """The outcome of one call of one prompt on one deployment."""

    latency_ms: float
    text: str = ""
    output_tokens: int | None = None
    check: CheckResult | None = None
    error: str | None = None
    cut_short: bool = False
    """The response is ``incomplete`` (e.g. it hit max_output_tokens)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class SideResult:
    """Every call of one prompt on one deployment."""

    calls: list[Call] = field(default_factory=list)

    @property
    def answered(self) -> list[Call]:
        return [c for c in self.calls if c.ok]

    @property
    def passes(self) -> int:
        return sum(1 for c in self.calls if c.check is not None and c.check.ok)

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if not c.ok)

    @property
    def cut_short(self) -> int:
        return sum(1 for c in self.calls if c.cut_short)

    @property
    def first_text(self) -> str:
        answered = self.answered
        return answered[0].text if answered else ""

    @property
    def first_error(self) -> str:
        return next((c.error for c in self.calls if c.error), "")

    @property
    def first_check(self) -> CheckResult | None:
        """The first failing verdict, else the first verdict (the one worth reading)."""
        checks = [c.check for c in self.calls if c.check is not None]
        return next((c for c in checks if not c.ok), checks[0] if checks else None)

    @property
    def tokens(self) -> float | None:
        """Mean output tokens of the answered calls that reported usage."""
        counts = [c.output_tokens for c in self.answered if c.output_tokens is not None]
        return statistics.fmean(counts) if counts else None

    @property
    def latency_ms(self) -> float | None:
        """Median latency of the answered calls."""
        times = [c.latency_ms for c in self.answered]
        return statistics.median(times) if times else None


@dataclass(slots=True)
class RowResult:
    """One prompt on both deployments."""

    prompt: Prompt
    baseline: SideResult = field(default_factory=SideResult)
    candidate: SideResult = field(default_factory=SideResult)

    def side(self, name: Side) -> SideResult:
        return self.baseline if name == "baseline" else self.candidate

    @property
    def checked(self) -> bool:
        return self.prompt.expect.kind is not None

    @property
    def token_delta_pct(self) -> float | None:
        """Candidate over baseline output tokens, in percent (None when either side has no
        count, or the baseline produced no tokens)."""
        return delta_pct(self.baseline.tokens, self.candidate.tokens)

    def over(self, tolerance_pct: float) -> bool:
        base, cand = self.baseline.tokens, self.candidate.tokens
        if base is None or cand is None:
            return False
        if base == 0:
            return cand > 0
        delta = self.token_delta_pct
        return delta is not None and delta > tolerance_pct

    @property
    def identical(self) -> bool | None:
        """Every call on both sides gave the same text (None unless both sides answered)."""
        texts = [c.text.strip() for c in (*self.baseline.calls, *self.candidate.calls)]
        if not self.baseline.answered or not self.candidate.answered:
            return None
        if self.baseline.errors or self.candidate.errors:
            return False
        return len(set(texts)) == 1


def delta_pct(base: float | None, cand: float | None) -> float | None:
    """``(cand - base) / base`` in percent; 0 when both are 0; None when unknown."""
    if base is None or cand is None:
        return None
    if base == 0:
        return 0.0 if cand == 0 else None
    return (cand - base) / base * 100.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class SideSummary:
    """The totals of one side."""

    deployment: str
    calls: int
    errors: int
    checked_calls: int
    passes: int
    tokens: float
    """Output tokens summed over the rows both sides answered (per-row means)."""
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cut_short: int

    @property
    def compliance(self) -> float | None:
        """The share of checked calls whose output passed (None when no row has a format)."""
        return self.passes / self.checked_calls if self.checked_calls else None


@dataclass(frozen=True, slots=True)
class Summary:
    """The totals of a report."""

    rows: int
    baseline: SideSummary
    candidate: SideSummary
    identical: int
    compared: int
    """Rows where both sides answered (the ones identical and token totals count)."""
    over_tolerance: list[str]
    tolerance_pct: float

    @property
    def token_delta_pct(self) -> float | None:
        return delta_pct(self.baseline.tokens, self.candidate.tokens)


@dataclass(slots=True)
class Report:
    """The whole audit: which deployments, how, and a result per prompt."""

    baseline: str
    candidate: str
    rows: list[RowResult]
    repeat: int = 1
    max_tokens: int | None = None
    tolerance_pct: float = DEFAULT_TOLERANCE_PCT
    source: str = ""
    """The prompts file, for the report's title."""

    def summary(self) -> Summary:
        compared = [
            r for r in self.rows if r.baseline.tokens is not None and r.candidate.tokens is not None
        ]
        return Summary(
            rows=len(self.rows),
            baseline=self._side_summary("baseline", compared),
            candidate=self._side_summary("candidate", compared),
            identical=sum(1 for r in self.rows if r.identical),
            compared=len(compared),
            over_tolerance=[r.prompt.id for r in self.rows if r.over(self.tolerance_pct)],
            tolerance_pct=self.tolerance_pct,
        )

    def _side_summary(self, name: Side, compared: list[RowResult]) -> SideSummary:
        sides = [r.side(name) for r in self.rows]
        times = [c.latency_ms for s in sides for c in s.answered]
        return SideSummary(
            deployment=self.baseline if name == "baseline" else self.candidate,
            calls=sum(len(s.calls) for s in sides),
            errors=sum(s.errors for s in sides),
            checked_calls=sum(len(r.side(name).calls) for r in self.rows if r.checked),
            passes=sum(r.side(name).passes for r in self.rows if r.checked),
            tokens=sum(r.side(name).tokens or 0.0 for r in compared),
            latency_p50_ms=percentile(times, 50),
            latency_p95_ms=percentile(times, 95),
            cut_short=sum(s.cut_short for s in sides),
        )


# --- formatting ------------------------------------------------------------------------


def first80(text: str) -> str:
    """The first 80 characters on one line (newlines and tabs become spaces), as the seed's
    harness shows them."""
    return "".join(" " if ch in "\r\n\t" else ch for ch in text[:80])


def number(value: float | None, digits: int = 1) -> str:
    """A number for a report cell: integers without decimals; empty for None."""
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def signed_pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}"


def flag(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def rate(passes: int, total: int) -> str:
    """``passes/total (pct%)``, or ``-`` when nothing was checked."""
    if not total:
        return "-"
    return f"{passes}/{total} ({passes / total:.0%})"


def tsv_row(row: RowResult, tolerance_pct: float) -> list[str]:
    """One prompt as the TSV's cells, in TSV_COLUMNS order."""
    base, cand = row.baseline, row.candidate
    checked = row.checked
    base_check, cand_check = base.first_check, cand.first_check
    return [
        row.prompt.id,
        row.prompt.expect.kind or "",
        str(len(base.calls)),
        first80(base.first_text),
        first80(cand.first_text),
        str(base.passes) if checked else "",
        str(cand.passes) if checked else "",
        base_check.describe() if base_check else "",
        cand_check.describe() if cand_check else "",
        number(base.tokens),
        number(cand.tokens),
        signed_pct(row.token_delta_pct),
        flag(row.over(tolerance_pct)),
        number(base.latency_ms),
        number(cand.latency_ms),
        flag(row.identical),
        str(base.cut_short),
        str(cand.cut_short),
        " ".join(base.first_error.split()),
        " ".join(cand.first_error.split()),
    ]


def write_tsv(report: Report, path: Path) -> None:
    """The per-prompt table, tab-separated with a header row (csv module quoting)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        for row in report.rows:
            writer.writerow(tsv_row(row, report.tolerance_pct))


def summary_rows(summary: Summary) -> list[tuple[str, str, str, str]]:
    """The totals as ``(metric, baseline, candidate, delta)``: shared by terminal and HTML."""
    b, c = summary.baseline, summary.candidate
    compliance_delta = ""
    if b.compliance is not None and c.compliance is not None:
        compliance_delta = f"{(c.compliance - b.compliance) * 100:+.1f} pts"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def ms_delta(x: float | None, y: float | None) -> str:
        pct = delta_pct(x, y)
        return "" if pct is None else f"{pct:+.1f}%"

    tokens_delta = summary.token_delta_pct
    return [
        ("format compliance", rate(b.passes, b.checked_calls), rate(c.passes, c.checked_calls),
         compliance_delta),
        ("output tokens", number(b.tokens), number(c.tokens),
         "" if tokens_delta is None else f"{tokens_delta:+.1f}%"),
        ("latency p50 (ms)", ms(b.latency_p50_ms), ms(c.latency_p50_ms),
         ms_delta(b.latency_p50_ms, c.latency_p50_ms)),
        ("latency p95 (ms)", ms(b.latency_p95_ms), ms(c.latency_p95_ms),
         ms_delta(b.latency_p95_ms, c.latency_p95_ms)),
        ("cut short", str(b.cut_short), str(c.cut_short), ""),
        ("failed calls", f"{b.errors}/{b.calls}", f"{c.errors}/{c.calls}", ""),
    ]  # fmt: skip


def gate_failures(
    summary: Summary,
    *,
    compliance: bool = False,
    tokens_pct: float | None = None,
    errors: bool = False,
) -> list[str]:
    """What breaches the CI gates asked for (empty when none): ``compliance``, candidate
    compliance below the baseline's; ``tokens_pct``, total output-token delta above it;
    ``errors``, any failed call."""
    b, c = summary.baseline, summary.candidate
    failed: list[str] = []
    if compliance and b.compliance is not None and c.compliance is not None:
        if c.passes < b.passes:
            failed.append(
                f"candidate format compliance {rate(c.passes, c.checked_calls)} is below the "
                f"baseline's {rate(b.passes, b.checked_calls)}"
            )
    delta = summary.token_delta_pct
    if tokens_pct is not None:
        if delta is not None and delta > tokens_pct:
            failed.append(
                f"candidate output tokens {delta:+.1f}% exceed the +{number(tokens_pct)}% limit"
            )
        elif delta is None and c.tokens > 0:
            failed.append("candidate output tokens grew from none on the baseline")
    if errors and (b.errors or c.errors):
        failed.append(f"{b.errors + c.errors} call(s) failed")
    return failed


# --- HTML --------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#1d1d1f}
h1{font-size:1.4em;margin:0 0 .2em}
p.meta{color:#555;margin:.2em 0 1.2em}
table{border-collapse:collapse;margin:.6em 0 1.6em}
th,td{border:1px solid #d0d0d5;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f2f2f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.fail{background:#fde2e1;color:#8a1c17}
td.warn{background:#fff3cd}
td.pass{background:#e3f6e5}
tr.fail>td:first-child{border-left:4px solid #c9302c}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;max-width:48em;margin:.3em 0}
details summary{cursor:pointer;color:#444}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _td(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{_e(text)}</td>"


def _output_cell(side: SideResult) -> str:
    if not side.answered:
        return '<td class="fail">' + _e(side.first_error or "no answer") + "</td>"
    text = side.first_text
    head = first80(text)
    if len(text) <= 80 and "\n" not in text:
        return f"<td><code>{_e(head)}</code></td>"
    return (
        f"<td><code>{_e(head)}</code><details><summary>full output</summary>"
        f"<pre>{_e(text)}</pre></details></td>"
    )


def _check_cell(row: RowResult, side: SideResult) -> str:
    if not row.checked:
        return "<td></td>"
    verdict = side.first_check
    label = f"{side.passes}/{len(side.calls)}"
    detail = verdict.describe() if verdict else (side.first_error or "")
    cls = "pass" if side.passes == len(side.calls) else "fail"
    return f'<td class="{cls}">{_e(label)}<br><small>{_e(detail)}</small></td>'


def _html_row(row: RowResult, tolerance_pct: float) -> str:
    base, cand = row.baseline, row.candidate
    over = row.over(tolerance_pct)
    failed = (
        base.errors
        or cand.errors
        or (row.checked and cand.passes < len(cand.calls))
        or (row.checked and base.passes < len(base.calls))
    )
    identical = row.identical
    cells = [
        _td(row.prompt.id),
        _td(row.prompt.expect.kind or ""),
        _output_cell(base),
        _output_cell(cand),
        _check_cell(row, base),
        _check_cell(row, cand),
        _td(number(base.tokens), "num"),
        _td(number(cand.tokens), "num"),
        _td(signed_pct(row.token_delta_pct), "num warn" if over else "num"),
        _td(number(base.latency_ms), "num"),
        _td(number(cand.latency_ms), "num"),
        _td("" if identical is None else ("yes" if identical else "no")),
        _td(
            ", ".join(
                f"{name} cut short ×{n}"
                for name, n in (("baseline", base.cut_short), ("candidate", cand.cut_short))
                if n
            ),
            "warn" if base.cut_short or cand.cut_short else "",
        ),
    ]
    cls = ' class="fail"' if failed else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def render_html(report: Report, generated: str = "") -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts, all text escaped)."""
    summary = report.summary()
    b, c = _e(report.baseline), _e(report.candidate)
    meta = [
        f"{summary.rows} prompts" + (f" from {report.source}" if report.source else ""),
        f"{report.repeat} call(s) per prompt and deployment",
        f"max output tokens {report.max_tokens}" if report.max_tokens else "",
        f"token tolerance +{number(report.tolerance_pct)}%",
        f"generated {generated}" if generated else "",
    ]
    totals = "".join(
        "<tr>" + _td(metric) + _td(x, "num") + _td(y, "num") + _td(d, "num") + "</tr>"
        for metric, x, y, d in summary_rows(summary)
    )
    over = summary.over_tolerance
    notes = [
        f"identical: {summary.identical} of {summary.rows} prompts",
        f"over +{number(summary.tolerance_pct)}% output tokens: {len(over)} prompt(s)"
        + (f" ({', '.join(over)})" if over else ""),
    ]
    rows = "\n".join(_html_row(row, report.tolerance_pct) for row in report.rows)
    head = (
        "<tr><th>id</th><th>format</th><th>baseline output</th><th>candidate output</th>"
        "<th>baseline format</th><th>candidate format</th><th>baseline tokens</th>"
        "<th>candidate tokens</th><th>token Δ %</th><th>baseline ms</th>"
        "<th>candidate ms</th><th>identical</th><th>notes</th></tr>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Prompt audit: {b} vs {c}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Prompt audit: <code>{b}</code> (baseline) vs <code>{c}</code> (candidate)</h1>
<p class="meta">{_e(" · ".join(m for m in meta if m))}</p>
<h2>Summary</h2>
<table id="summary">
<tr><th>metric</th><th>{b}</th><th>{c}</th><th>delta</th></tr>
{totals}
</table>
<ul>{"".join(f"<li>{_e(n)}</li>" for n in notes)}</ul>
<h2>Per prompt</h2>
<table id="prompts">
{head}
{rows}
</table>
</body>
</html>
"""


def write_html(report: Report, path: Path, generated: str = "") -> None:
    path.write_text(render_html(report, generated), encoding="utf-8")
