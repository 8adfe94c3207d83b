"""The audit report: statistics, gates, the TSV and the HTML page."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cupola.audit.checks import expectation
from cupola.audit.report import (
    TSV_COLUMNS,
    Call,
    Prompt,
    Report,
    RowResult,
    SideResult,
    delta_pct,
    gate_failures,
    percentile,
    render_html,
    summary_rows,
    write_tsv,
)

JSON = expectation("json")
PLAIN = expectation("")


def answered(text: str, tokens: int, ms: float, prompt: Prompt) -> Call:
    return Call(ms, text=text, output_tokens=tokens, check=prompt.expect.check(text))


def row(prompt: Prompt, base: list[Call], cand: list[Call]) -> RowResult:
    return RowResult(prompt, SideResult(base), SideResult(cand))


@pytest.fixture
def report() -> Report:
    """Three prompts: JSON both ways; JSON lost on the candidate (and 50% more tokens);
    a plain prompt where the candidate failed."""
    sentiment = Prompt("sentiment", "Reply in JSON.", "Great hotel.", JSON)
    invoice = Prompt("invoice", "Reply in JSON.", "INV-1, 10 EUR", JSON)
    subject = Prompt("subject", "One line.", "Meeting moved.", PLAIN)
    return Report(
        baseline="gpt-4o",
        candidate="gpt-5.1",
        rows=[
            row(
                sentiment,
                [answered('{"s": "positive"}', 10, 100.0, sentiment)],
                [answered('{"s": "positive"}', 10, 300.0, sentiment)],
            ),
            row(
                invoice,
                [answered('{"id": "INV-1"}', 20, 200.0, invoice)],
                [answered("The invoice is INV-1.", 30, 500.0, invoice)],
            ),
            row(
                subject,
                [answered("Meeting moved", 4, 50.0, subject)],
                [Call(5.0, error="HTTP 502: upstream failed")],
            ),
        ],
    )


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)


def test_delta_pct() -> None:
    assert delta_pct(100, 120) == 20.0
    assert delta_pct(100, 80) == -20.0
    assert delta_pct(0, 0) == 0.0
    assert delta_pct(0, 5) is None
    assert delta_pct(None, 5) is None


def test_summary(report: Report) -> None:
    summary = report.summary()
    assert summary.rows == 3
    b, c = summary.baseline, summary.candidate
    # only the two JSON prompts are checked
    assert (b.passes, b.checked_calls, b.compliance) == (2, 2, 1.0)
    assert (c.passes, c.checked_calls, c.compliance) == (1, 2, 0.5)
    # tokens total over the prompts both sides answered: 10+20 vs 10+30
    assert (summary.compared, b.tokens, c.tokens) == (2, 30, 40)
    assert summary.token_delta_pct == pytest.approx(100 / 3)
    # latency over answered calls only: the failed call (5 ms) is not a latency
    assert b.latency_p50_ms == 100.0 and c.latency_p50_ms == 400.0
    assert c.latency_p95_ms == pytest.approx(490.0)
    assert (b.errors, c.errors) == (0, 1)
    assert summary.identical == 1
    assert summary.over_tolerance == ["invoice"]


def test_rows(report: Report) -> None:
    sentiment, invoice, subject = report.rows
    assert sentiment.identical is True and sentiment.token_delta_pct == 0.0
    assert invoice.identical is False and invoice.token_delta_pct == 50.0
    assert invoice.over(20.0) and not invoice.over(50.0)
    assert subject.identical is None and subject.token_delta_pct is None
    assert not subject.over(20.0)


def test_repeats_count_every_call() -> None:
    prompt = Prompt("p", "", "u", JSON)
    result = row(
        prompt,
        [answered("{}", 10, 10.0, prompt), answered("{}", 14, 30.0, prompt)],
        [answered("{}", 12, 20.0, prompt), answered("oops", 12, 40.0, prompt)],
    )
    assert (result.baseline.passes, result.candidate.passes) == (2, 1)
    assert result.baseline.tokens == 12.0 and result.candidate.tokens == 12.0
    assert result.candidate.latency_ms == 30.0
    assert result.identical is False  # the candidate's texts differ between calls
    failing = result.candidate.first_check
    assert failing is not None and not failing.ok
    same = row(prompt, [answered("{}", 1, 1.0, prompt)] * 2, [answered(" {}\n", 1, 1.0, prompt)])
    assert same.identical is True


def test_gates(report: Report) -> None:
    summary = report.summary()
    assert gate_failures(summary) == []
    assert gate_failures(summary, compliance=True) == [
        "candidate format compliance 1/2 (50%) is below the baseline's 2/2 (100%)"
    ]
    assert gate_failures(summary, tokens_pct=20) == [
        "candidate output tokens +33.3% exceed the +20% limit"
    ]
    assert gate_failures(summary, tokens_pct=40) == []
    assert gate_failures(summary, errors=True) == ["1 call(s) failed"]


def test_summary_rows(report: Report) -> None:
    rows = {metric: (b, c, d) for metric, b, c, d in summary_rows(report.summary())}
    assert rows["format compliance"] == ("2/2 (100%)", "1/2 (50%)", "-50.0 pts")
    assert rows["output tokens"] == ("30", "40", "+33.3%")
    assert rows["latency p50 (ms)"] == ("100.0", "400.0", "+300.0%")
    assert rows["failed calls"] == ("0/3", "1/3", "")


def test_tsv(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "diff.tsv"
    long = "line one\tcol\n" + "x" * 200
    report.rows[2].baseline.calls[0] = Call(50.0, text=long, output_tokens=4)
    write_tsv(report, path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        assert reader.fieldnames == TSV_COLUMNS
        rows = list(reader)
    assert [r["id"] for r in rows] == ["sentiment", "invoice", "subject"]
    sentiment, invoice, subject = rows
    assert sentiment["format"] == "json" and subject["format"] == ""
    assert (sentiment["baseline_pass"], sentiment["candidate_pass"]) == ("1", "1")
    assert (invoice["baseline_pass"], invoice["candidate_pass"]) == ("1", "0")
    assert invoice["candidate_check"].startswith("fail: not JSON")
    assert invoice["baseline_check"] == "ok"
    assert (invoice["baseline_tokens"], invoice["candidate_tokens"]) == ("20", "30")
    assert invoice["token_delta_pct"] == "+50.0" and invoice["over_tolerance"] == "true"
    assert sentiment["identical"] == "true" and invoice["identical"] == "false"
    assert (invoice["baseline_latency_ms"], invoice["candidate_latency_ms"]) == ("200", "500")
    assert subject["baseline_pass"] == "" and subject["identical"] == ""
    assert subject["candidate_error"] == "HTTP 502: upstream failed"
    assert subject["candidate_latency_ms"] == "" and subject["candidate_first80"] == ""
    # first 80 characters, on one line
    assert subject["baseline_first80"] == ("line one col " + "x" * 200)[:80]
    assert len(path.read_text().splitlines()) == 4


class _Collector(HTMLParser):
    """Tags and the text of each table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_escaped(report: Report) -> None:
    evil = '<script>alert("x")</script> & <b>bold</b>'
    report.rows[1].candidate.calls[0] = Call(500.0, text=evil, output_tokens=30)
    report.rows[0].prompt = Prompt("<img src=x onerror=alert(1)>", "s", "u", JSON)
    page = render_html(report, generated="2026-01-01 00:00:00 UTC")
    parser = _Collector()
    parser.feed(page)
    # no scripts, images, links or any other asset, and nothing the model wrote became a tag
    assert set(parser.tags) <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr",
        "th", "td", "code", "details", "summary", "pre", "ul", "li", "br", "small",
    }  # fmt: skip
    assert not re.search(r"https?://", page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    text = "".join(parser.text)
    assert evil in text
    assert "gpt-4o" in text and "gpt-5.1" in text
    assert "2026-01-01 00:00:00 UTC" in text


def test_html_tables_and_highlights(report: Report) -> None:
    page = render_html(report)
    summary = page[page.index('<table id="summary">') : page.index("</table>")]
    assert "2/2 (100%)" in summary and "1/2 (50%)" in summary and "+33.3%" in summary
    prompts = page[page.index('<table id="prompts">') :]
    rows = re.findall(r"<tr( class=\"fail\")?><td>([^<]*)</td>", prompts)
    assert rows == [("", "sentiment"), (' class="fail"', "invoice"), (' class="fail"', "subject")]
    assert '<td class="fail">HTTP 502: upstream failed</td>' in prompts
    assert '<td class="num warn">+50.0</td>' in prompts
    assert "identical: 1 of 3 prompts" in page
    assert "over +20% output tokens: 1 prompt(s) (invoice)" in page


def test_html_shows_long_outputs_in_full(report: Report) -> None:
    long = "first line\n" + "word " * 40
    report.rows[2].baseline.calls[0] = Call(50.0, text=long, output_tokens=41)
    page = render_html(report)
    assert "<details><summary>full output</summary><pre>first line\nword word" in page
