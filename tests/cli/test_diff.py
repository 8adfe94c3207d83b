"""``cupola diff``: the prompt audit against a live server, its reports, gates and errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cupola.audit.report import TSV_COLUMNS
from cupola.cli.main import cli
from cupola.settings import DeploymentConfig, ScriptStep
from live_server import LiveServer, make_settings, start_server

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prompt-audit" / "prompts.csv"

# What a well-behaved model answers to each prompt of the sample, and whether the answer
# passes the row's format check (None: the row has no format).
ANSWERS: dict[str, tuple[str, str, bool | None]] = {
    "ticket-triage": (
        r"charged twice",
        '{"category": "billing", "priority": "high", "summary": "Charged twice for #4821."}',
        True,
    ),
    "scored-entity": (r"Contoso", '```json\n{"name": "Contoso", "score": 0.7}\n```', True),
    "review-sentiment": (
        r"hotel room",
        'Sure! {"sentiment": "positive", "confidence": 0.8}',
        False,
    ),
    "invoice-fields": (
        r"INVOICE",
        '{"invoice_number": "INV-2024-0193", "issue_date": "2024-03-03", '
        '"total": {"amount": 1440.0, "currency": "EUR"}}',
        True,
    ),
    "sql-top-customers": (
        r"five customers",
        "SELECT c.name, SUM(o.total) AS total FROM customers c JOIN orders o "
        "ON o.customer_id = c.id WHERE o.created_at >= '2024-01-01' "
        "AND o.created_at < '2025-01-01' GROUP BY c.id ORDER BY total DESC LIMIT 5;",
        True,
    ),
    "sql-monthly-revenue": (
        r"Revenue per month",
        "```sql\nSELECT strftime('%Y-%m', created_at) AS month, SUM(total) FROM orders\n"
        "WHERE status = 'paid' AND created_at >= date('now', '-12 months')\n"
        "GROUP BY month ORDER BY month;\n```",
        True,
    ),
    "sql-cancel-stale": (
        r"pending",
        "UPDATE orders SET status = 'cancelled' "
        "WHERE status = 'pending' AND created_at < date('now', '-30 days')",
        True,
    ),
    "normalize-date": (r"second Tuesday", "2025-03-11", True),
    "refund-eligible": (r"blender 12 days", "No, used items cannot be refunded.", False),
    "sku-lookup": (r"600 watt", "BLN-0450", True),
    "email-subject": (r"quarterly planning", "Planning meeting moves to Friday 14:00, B2", None),
    "step-by-step-answer": (r"train leaves", "It arrives at 12:15.", None),
    "never-guess": (r"paracetamol", "Please ask a pharmacist or your doctor.", None),
}


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        assert reader.fieldnames == TSV_COLUMNS
        return list(reader)


def one_line_error(result: Result, status: int = 2) -> str:
    assert result.exit_code == status, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "cupola.yaml"
    config.write_text("project: default\n")
    return {"CUPOLA_CONFIG": str(config), "CUPOLA_ENDPOINT": url}


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    return _env(server.url, tmp_path)


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with ``echo`` and ``formatter``, a scripted model that answers the sample's
    prompts as ANSWERS says."""
    script = [ScriptStep(match=match, reply=reply) for match, reply, _ in ANSWERS.values()]
    deployments = [
        DeploymentConfig(name="echo", provider="scripted", mode="echo"),
        DeploymentConfig(name="formatter", provider="scripted", mode="script", script=script),
    ]
    db = tmp_path_factory.mktemp("diff") / "cupola.db"
    live = start_server(make_settings(f"sqlite:///{db}", deployments=deployments))
    yield live
    live.stop()


@pytest.fixture
def scripted_env(scripted_server: LiveServer, tmp_path: Path) -> dict[str, str]:
    return _env(scripted_server.url, tmp_path)


def test_sample_against_echo_and_a_formatting_model(
    scripted_env: dict[str, str], tmp_path: Path
) -> None:
    tsv, html = tmp_path / "diff.tsv", tmp_path / "diff.html"
    result = invoke(
        scripted_env,
        "diff", str(SAMPLE), "--baseline", "echo", "--candidate", "formatter",
        "--tsv", str(tsv), "--html", str(html),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_tsv(tsv)
    assert [r["id"] for r in rows] == list(ANSWERS)
    for r in rows:
        _, reply, passes = ANSWERS[r["id"]]
        assert r["calls"] == "1"
        assert r["candidate_first80"] == reply[:80].replace("\n", " ")
        assert r["baseline_first80"].startswith("system: ")  # echo repeats the prompt
        if passes is None:
            assert r["baseline_pass"] == r["candidate_pass"] == r["candidate_check"] == ""
        else:
            assert (r["baseline_pass"], r["candidate_pass"]) == ("0", str(int(passes)))
            assert r["candidate_check"].startswith("ok" if passes else "fail:")
        assert r["candidate_tokens"] == str(len(reply.split()))
        base, cand = int(r["baseline_tokens"]), int(r["candidate_tokens"])
        delta = (cand - base) / base * 100
        assert r["token_delta_pct"] == f"{delta:+.1f}"
        assert r["over_tolerance"] == str(delta > 20).lower()
        assert float(r["baseline_latency_ms"]) > 0 and float(r["candidate_latency_ms"]) > 0
        assert r["identical"] == "false"
        assert r["baseline_error"] == r["candidate_error"] == ""
    by_id = {r["id"]: r for r in rows}
    assert by_id["scored-entity"]["candidate_check"] == "ok (inside a ``` fence)"
    assert by_id["review-sentiment"]["candidate_check"].startswith("fail: not JSON")
    assert by_id["refund-eligible"]["candidate_check"] == r"fail: does not match /(?i)(yes|no)\.?/"

    out = result.stdout
    assert "0/10 (0%)" in out and "8/10 (80%)" in out  # baseline, candidate
    assert "identical: 0 of 13 prompts" in out
    assert f"wrote {tsv}" in out and f"wrote {html}" in out
    page = html.read_text()
    for prompt_id in ANSWERS:
        assert f"<td>{prompt_id}</td>" in page
    assert "8/10 (80%)" in page and "<code>formatter</code>" in page


def test_same_deployment_twice_is_identical(scripted_env: dict[str, str], tmp_path: Path) -> None:
    tsv = tmp_path / "same.tsv"
    result = invoke(
        scripted_env,
        "diff", str(SAMPLE), "--baseline", "formatter", "--candidate", "formatter",
        "--repeat", "2", "--concurrency", "3", "--tsv", str(tsv),
        "--fail-on", "compliance", "--fail-on", "tokens=0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_tsv(tsv)
    assert all(r["calls"] == "2" and r["identical"] == "true" for r in rows)
    assert all(r["token_delta_pct"] == "+0.0" for r in rows)
    assert "16/20 (80%)" in result.stdout
    assert "identical: 13 of 13 prompts" in result.stdout


def test_gates_fail_a_regressing_candidate(scripted_env: dict[str, str], tmp_path: Path) -> None:
    html = tmp_path / "regress.html"
    base = ["diff", str(SAMPLE), "--baseline", "formatter", "--candidate", "echo"]
    regressed = invoke(
        scripted_env, *base, "--html", str(html), "--fail-on", "compliance",
        "--fail-on", "tokens=20",
    )  # fmt: skip
    assert regressed.exit_code == 1, regressed.output
    failures = regressed.stderr.strip().splitlines()
    assert failures[0] == (
        "gate failed: candidate format compliance 0/10 (0%) is below the baseline's 8/10 (80%)"
    )
    assert failures[1].startswith("gate failed: candidate output tokens +")
    assert failures[1].endswith("% exceed the +20% limit")
    assert html.exists()  # the reports are written whatever the gates say
    assert "over +20% output tokens: 13 prompt(s)" in regressed.stdout

    improved = invoke(
        scripted_env,
        "diff", str(SAMPLE), "--baseline", "echo", "--candidate", "formatter",
        "--fail-on", "compliance", "--fail-on", "tokens=20",
    )  # fmt: skip
    assert improved.exit_code == 0, improved.output
    assert improved.stderr == ""


@pytest.mark.embedded
def test_embedded_model_against_echo(env: dict[str, str], tmp_path: Path) -> None:
    """The scripted echo deployment against the embedded local model, both reports."""
    schema = json.dumps(
        {
            "type": "object",
            "properties": {"category": {"type": "string", "enum": ["billing", "other"]}},
            "required": ["category"],
        }
    )
    prompts = tmp_path / "small.csv"
    with prompts.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "format", "system", "user", "schema", "pattern"])
        writer.writerow(["triage", "json_schema", "Classify the ticket.", "Charged twice.", schema])
        writer.writerow(["count-orders", "sql", "Write SQLite only.", "Count the orders.", "", ""])
        writer.writerow(["sky", "regex", "Answer yes or no.", "Is the sky blue?", "", "(?i)yes"])
        writer.writerow(["greet", "", "Be brief.", "Say hello.", "", ""])
    tsv, html = tmp_path / "local.tsv", tmp_path / "local.html"
    result = invoke(
        env,
        "diff", str(prompts), "--baseline", "echo", "--candidate", "local-small",
        "--max-tokens", "16", "--concurrency", "2", "--tsv", str(tsv), "--html", str(html),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_tsv(tsv)
    assert [r["id"] for r in rows] == ["triage", "count-orders", "sky", "greet"]
    echoed = {
        "triage": "system: Classify the ticket. user: Charged twice.",
        "count-orders": "system: Write SQLite only. user: Count the orders.",
        "sky": "system: Answer yes or no. user: Is the sky blue?",
        "greet": "system: Be brief. user: Say hello.",
    }
    candidate_passes = 0
    for r in rows:
        assert r["baseline_error"] == r["candidate_error"] == "", r
        assert r["baseline_first80"] == echoed[r["id"]]
        assert r["baseline_tokens"] == str(len(echoed[r["id"]].split()))
        assert r["candidate_first80"].strip(), r  # the local model said something
        assert 0 < int(r["candidate_tokens"]) <= 16
        assert float(r["candidate_latency_ms"]) > 0
        assert r["identical"] == "false"
        if r["id"] == "greet":
            assert r["baseline_pass"] == r["candidate_pass"] == r["candidate_check"] == ""
            continue
        # echo repeats the prompt, which is none of JSON, SQL or a bare "yes"
        assert (r["baseline_pass"], r["baseline_check"][:5]) == ("0", "fail:")
        # the candidate's verdict and its pass count agree
        passed = r["candidate_check"].startswith("ok")
        assert r["candidate_pass"] == str(int(passed))
        candidate_passes += passed
    assert "0/3 (0%)" in result.stdout
    assert f"{candidate_passes}/3 ({candidate_passes / 3:.0%})" in result.stdout
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for prompt_id in echoed:
        assert f"<td>{prompt_id}</td>" in page
    assert "<code>local-small</code>" in page and "max output tokens 16" in page


def test_a_failing_deployment_is_recorded_per_row(env: dict[str, str], tmp_path: Path) -> None:
    prompts = tmp_path / "two.csv"
    prompts.write_text('id,system,user,format\na,Reply in JSON.,hi,json\nb,,"hello, you",\n')
    tsv = tmp_path / "fail.tsv"
    args = ["diff", str(prompts), "--baseline", "echo", "--candidate", "unreachable"]
    result = invoke(env, *args, "--tsv", str(tsv))
    assert result.exit_code == 0, result.output
    rows = read_tsv(tsv)
    for r in rows:
        assert r["baseline_error"] == ""
        assert "unreachable" in r["candidate_error"] and "cannot connect" in r["candidate_error"]
        assert r["candidate_first80"] == r["candidate_tokens"] == r["identical"] == ""
    assert rows[0]["candidate_pass"] == "0"  # no answer is not a compliant answer
    assert "failed calls in: a, b (see the error columns)" in result.stdout
    gated = invoke(env, *args, "--fail-on", "errors")
    assert gated.exit_code == 1
    assert gated.stderr.strip() == "gate failed: 2 call(s) failed"


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prompts.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,system\n1,s\n", "prompts.csv: missing column(s) user (the header has: id, system)"),
        ("", "prompts.csv: empty file"),
        ("id,system,user\n", "prompts.csv: no prompts (only a header)"),
        (
            'id,system,user,format,schema\nok,s,u,,\nbad,s,u,json_schema,"{""type"": "\n',
            "prompts.csv line 3 (id 'bad'): schema is not valid JSON",
        ),
        (
            'id,system,user,format,schema\nbad,s,u,json_schema,"{""type"": 12}"\n',
            "prompts.csv line 2 (id 'bad'): schema is not a valid JSON Schema",
        ),
        (
            'id,system,user,format,pattern\nr,"multi\nline",u,regex,([a-z]\n',
            "prompts.csv line 2 (id 'r'): pattern is not a valid regular expression",
        ),
        (
            "id,system,user,format\nx,s,u,yaml\n",
            "prompts.csv line 2 (id 'x'): format 'yaml' is not one of json, json_schema, sql",
        ),
        ("id,system,user\na,s,u\na,s,v\n", "line 3 (id 'a'): id 'a' is used by an earlier row"),
        ("id,system,user\na,s,\n", "prompts.csv line 2 (id 'a'): user is empty"),
        ("id,system,user\n,s,u\n", "prompts.csv line 2: id is empty"),
        ("id,system,user\na,s,u,extra\n", "line 2 (id 'a'): more fields than the header has"),
    ],
)
def test_bad_prompt_files(env: dict[str, str], tmp_path: Path, text: str, message: str) -> None:
    path = _csv(tmp_path, text)
    result = invoke(env, "diff", path, "--baseline", "echo", "--candidate", "echo")
    assert message in one_line_error(result)


def test_missing_file_and_bad_options(env: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    error = one_line_error(invoke(env, "diff", missing, "--baseline", "echo", "--candidate", "x"))
    assert error == f"error: {missing}: no such file"
    path = _csv(tmp_path, "id,system,user\na,s,u\n")
    base = ["diff", path, "--baseline", "echo", "--candidate", "echo"]
    error = one_line_error(invoke(env, *base, "--fail-on", "latency"))
    assert error == "error: --fail-on 'latency': expected compliance, tokens=PCT or errors"
    error = one_line_error(invoke(env, *base, "--fail-on", "tokens=lots"))
    assert "--fail-on tokens needs a percentage" in error


def test_unknown_deployment_fails_before_any_call(env: dict[str, str], tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,system,user\na,s,u\n")
    tsv = tmp_path / "never.tsv"
    result = invoke(
        env, "diff", path, "--baseline", "echo", "--candidate", "gpt-9", "--tsv", str(tsv)
    )
    error = one_line_error(result)
    assert error.startswith("error: unknown deployment 'gpt-9' (the server has: echo, ")
    assert "local-small" in error
    assert result.stdout == "" and not tsv.exists()


def test_server_unreachable_is_one_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,system,user\na,s,u\n")
    env = _env("http://127.0.0.1:9", tmp_path)
    result = invoke(env, "diff", path, "--baseline", "echo", "--candidate", "echo")
    assert "cannot reach cupola at http://127.0.0.1:9" in one_line_error(result, status=1)
