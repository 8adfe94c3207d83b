"""Format compliance checks: each format, valid and invalid output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cupola.audit.checks import (
    ExpectationError,
    check_json,
    check_json_schema,
    check_regex,
    check_sql,
    expectation,
    split_sql,
    strip_fence,
)

SCORED_ENTITY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "score": {"type": "number"}},
    "required": ["name", "score"],
    "additionalProperties": False,
}


# --- fences -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "body", "fenced"),
    [
        ('```json\n{"a": 1}\n```', '{"a": 1}', True),
        ("```\nSELECT 1;\n```", "SELECT 1;", True),
        ("  ```sql\nSELECT 1;```\n", "SELECT 1;", True),
        ('{"a": 1}', '{"a": 1}', False),
        ('Here you go:\n```json\n{"a": 1}\n```', 'Here you go:\n```json\n{"a": 1}\n```', False),
    ],
)
def test_strip_fence_removes_one_surrounding_fence(text: str, body: str, fenced: bool) -> None:
    assert strip_fence(text) == (body, fenced)


# --- json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ['{"sentiment": "positive", "confidence": 0.9}', "[1, 2, 3]", '  "yes"\n', "null"]
)
def test_json_valid(text: str) -> None:
    result = check_json(text)
    assert result.ok and not result.fenced
    assert result.describe() == "ok"


def test_json_in_a_fence_passes_and_says_so() -> None:
    result = check_json('```json\n{"sentiment": "neutral"}\n```')
    assert result.ok and result.fenced
    assert result.describe() == "ok (inside a ``` fence)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('Sure! Here is the JSON: {"sentiment": "positive"}', "not JSON: Expecting value"),
        ('{"sentiment": "positive",', "not JSON"),
        ("{'sentiment': 'positive'}", "not JSON: Expecting property name"),
        ('{"score": NaN}', "NaN is not JSON"),
        ('{"a": 1}\n{"b": 2}', "not JSON: Extra data"),
        ("", "empty output"),
        ("```json\n```", "empty output"),
    ],
)
def test_json_invalid(text: str, reason: str) -> None:
    result = check_json(text)
    assert not result.ok
    assert reason in result.detail
    assert result.describe().startswith("fail: ")


# --- json schema --------------------------------------------------------------------------


def test_json_schema_valid() -> None:
    validator = Draft202012Validator(SCORED_ENTITY)
    assert check_json_schema('{"name": "Contoso", "score": 0.7}', validator).ok
    fenced = check_json_schema('```json\n{"name": "Contoso", "score": 1}\n```', validator)
    assert fenced.ok and fenced.fenced


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"name": "Contoso"}', "'score' is a required property"),
        ('{"name": "Contoso", "score": "high"}', "'high' is not of type 'number' (at $.score)"),
        ('{"name": "Contoso", "score": 1, "why": "x"}', "Additional properties"),
        ("Contoso, 0.7", "not JSON"),
    ],
)
def test_json_schema_invalid(text: str, reason: str) -> None:
    result = check_json_schema(text, Draft202012Validator(SCORED_ENTITY))
    assert not result.ok
    assert reason in result.detail


# --- sql ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "SELECT name FROM customers WHERE id = 1",
        "SELECT name FROM customers WHERE id = 1;",
        "select c.name, sum(o.total) as total from customers c join orders o "
        "on o.customer_id = c.id group by c.id order by total desc limit 5;",
        "WITH paid AS (SELECT * FROM orders WHERE status = 'paid') "
        "SELECT strftime('%Y-%m', created_at), SUM(total) FROM paid GROUP BY 1",
        "UPDATE orders SET status = 'cancelled' WHERE status = 'pending'",
        "INSERT INTO orders (customer_id, total) VALUES (?, :total)",
        "DELETE FROM orders WHERE id IN (SELECT order_id FROM order_items WHERE quantity = 0)",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, note TEXT NOT NULL)",
        "SELECT my_udf(total) FROM orders",
        "SELECT 1; -- the answer",
        "/* top customers */ SELECT name FROM customers",
    ],
)
def test_sql_valid(text: str) -> None:
    result = check_sql(text)
    assert result.ok, result.detail
    assert not result.fenced


def test_sql_in_a_fence_and_several_statements() -> None:
    result = check_sql(
        "```sql\nUPDATE orders SET note = 'a;b' WHERE id = 1;\nSELECT note FROM orders;\n```"
    )
    assert result.ok and result.fenced
    assert result.detail == "inside a ``` fence, 2 statements"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Here is the query: SELECT name FROM customers", 'near "Here": syntax error'),
        ("SELECT name FROM customers;\nThis returns every name.", 'statement 2: near "This"'),
        ("SELECT * FROM", "incomplete input"),
        ("SELEC name FROM customers", 'near "SELEC": syntax error'),
        ("SELECT name FROM customers WHERE name = 'Ann", "unrecognized token"),
        ("SELECT count(*) FROM orders GROUP BY status HAVING", "incomplete input"),
        ("SELECT 1 UNION SELECT 1, 2", "do not have the same number of result columns"),
        ("I cannot write that query without the table definitions.", "syntax error"),
        ("", "no SQL statement"),
        ("-- nothing to do", "no SQL statement"),
        # other dialects: documented as not SQL (SQLite's dialect is the yardstick)
        ("SELECT total::int FROM orders", "unrecognized token"),
        ("SELECT TOP 5 name FROM customers", "syntax error"),
    ],
)
def test_sql_invalid(text: str, reason: str) -> None:
    result = check_sql(text)
    assert not result.ok
    assert reason in result.detail


def test_sql_check_compiles_but_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "attached.db"
    assert check_sql(f"ATTACH DATABASE '{target}' AS other").ok
    assert check_sql(f"VACUUM INTO '{target}'").ok
    assert not target.exists()


def test_split_sql_keeps_semicolons_in_strings_and_triggers() -> None:
    text = (
        "SELECT 'a;b';\n"
        "CREATE TRIGGER t AFTER INSERT ON orders BEGIN UPDATE x SET y = 1; END;\n"
        "SELECT 2"
    )
    assert [s.strip() for s in split_sql(text)] == [
        "SELECT 'a;b';",
        "CREATE TRIGGER t AFTER INSERT ON orders BEGIN UPDATE x SET y = 1; END;",
        "SELECT 2",
    ]


# --- regex --------------------------------------------------------------------------------


def test_regex_is_a_full_match_of_the_stripped_text() -> None:
    iso = re.compile(r"\d{4}-\d{2}-\d{2}")
    assert check_regex("2025-03-11\n", iso).ok
    assert not check_regex("The date is 2025-03-11.", iso).ok
    assert not check_regex("2025-03-11 (a Tuesday)", iso).ok
    assert check_regex("2025-03-11 (a Tuesday)", iso).describe() == (
        r"fail: does not match /\d{4}-\d{2}-\d{2}/"
    )


def test_regex_dot_does_not_cross_lines_unless_asked() -> None:
    text = "Answer: yes\nBecause the item is unused."
    assert not check_regex(text, re.compile(r"Answer: .*")).ok
    assert check_regex(text, re.compile(r"(?s)Answer: .*")).ok


# --- expectations from CSV cells ----------------------------------------------------------


def test_expectation_builds_each_format() -> None:
    assert expectation("").kind is None
    assert expectation("").check("anything") is None
    assert expectation(" JSON ").kind == "json"
    assert expectation("sql").check("SELECT 1") is not None
    schema = expectation("json_schema", json.dumps(SCORED_ENTITY))
    assert schema.schema == SCORED_ENTITY
    verdict = schema.check('{"name": "x"}')
    assert verdict is not None and not verdict.ok
    regex = expectation("regex", pattern=r"(?i)(yes|no)\.?")
    verdict = regex.check("No.")
    assert verdict is not None and verdict.ok


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (("yaml", "", ""), "format 'yaml' is not one of json, json_schema, sql, regex"),
        (("json_schema", "", ""), "format json_schema needs a schema"),
        (("json_schema", "{'type': 'object'}", ""), "schema is not valid JSON"),
        (("json_schema", "[1, 2]", ""), "schema must be a JSON object"),
        (("json_schema", '{"type": 12}', ""), "schema is not a valid JSON Schema"),
        (("regex", "", ""), "format regex needs a pattern"),
        (("regex", "", "([A-Z]+"), "pattern is not a valid regular expression"),
        (("json", '{"type": "object"}', ""), "schema is given but format is not json_schema"),
        (("sql", "", ".*"), "pattern is given but format is not regex"),
    ],
)
def test_expectation_errors(cells: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ExpectationError) as info:
        expectation(*cells)
    assert message in str(info.value)
