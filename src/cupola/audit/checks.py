"""Format compliance: does a model's output still parse as what the prompt asks for?

Pure functions, no I/O. Each check takes the model's text and returns a :class:`CheckResult`;
a failure is data (``ok=False`` with the reason), never an exception.

What each format means:

- ``json``: the text, with surrounding whitespace removed, is one JSON value (RFC 8259:
  ``NaN`` and ``Infinity`` are refused). One surrounding Markdown code fence (```` ```json ````
  ... ```` ``` ````) is removed first, and the result says so (``fenced``): the output is
  usable, but a parser that does not strip fences would fail on it.
- ``json_schema``: as ``json``, and the value validates against the row's JSON Schema
  (Draft 2020-12, the draft Structured Outputs use).
- ``sql``: every statement in the text compiles in SQLite (``EXPLAIN`` prepares a statement
  without running it) against an empty in-memory database. A schema-less database cannot know
  the tables, columns, functions or collations a statement names, so only those errors are
  forgiven; syntax errors, incomplete input, unknown tokens and other compile errors fail.
  Prose before or after the query fails, as a downstream ``execute()`` would. One code fence
  is removed as for JSON. The dialect is SQLite's, which covers ANSI SELECT/INSERT/UPDATE/
  DELETE/CREATE/WITH; PostgreSQL ``::`` casts, ``ILIKE``, ``EXTRACT(... FROM ...)``, T-SQL
  ``TOP`` and ``FETCH FIRST`` are reported as not SQL (use a ``regex`` row for those dialects).
- ``regex``: :func:`re.fullmatch` of the row's pattern against the text with surrounding
  whitespace removed, with no implicit flags: ``.`` does not cross newlines unless the pattern
  says ``(?s)``, so a one-line format is not satisfied by a chatty multi-line reply.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

FormatName = Literal["json", "json_schema", "sql", "regex"]
FORMATS: tuple[str, ...] = get_args(FormatName)

_FENCE = re.compile(r"\A```[A-Za-z0-9_+.-]*[ \t]*\r?\n(?P<body>.*?)\r?\n?```\Z", re.DOTALL)

_SCHEMA_LESS = (
    "no such table",
    "no such column",
    "no such function",
    "no such collation sequence",
    "no such module",
    "no such index",
    "no such view",
    "no such trigger",
    "no such savepoint",
    "unknown database",
    "not authorized",
)
"""SQLite compile errors that come from names an empty database lacks, or from the
authorizer below: the statement itself parsed."""

_DENIED = {sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH}
"""Actions refused while compiling: some pragmas act at compile time; nothing else does."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on one output."""

    ok: bool
    detail: str = ""
    """Why it failed, or a note on a pass (e.g. that a code fence was removed)."""
    fenced: bool = False
    """The output was inside one Markdown code fence, which was removed before checking."""

    def describe(self) -> str:
        """``ok``, ``ok (…)`` or ``fail: …``, for reports."""
        if self.ok:
            return f"ok ({self.detail})" if self.detail else "ok"
        return f"fail: {self.detail}"


def strip_fence(text: str) -> tuple[str, bool]:
    """The text without surrounding whitespace and one surrounding ```` ``` ```` fence (with
    an optional language tag), and whether there was such a fence."""
    stripped = text.strip()
    match = _FENCE.match(stripped)
    if match is None:
        return stripped, False
    return match.group("body").strip(), True


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(text: str) -> tuple[Any, CheckResult]:
    body, fenced = strip_fence(text)
    note = "inside a ``` fence" if fenced else ""
    if not body:
        return None, CheckResult(False, "empty output", fenced)
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except ValueError as exc:
        return None, CheckResult(False, f"not JSON: {exc}", fenced)
    return value, CheckResult(True, note, fenced)


def check_json(text: str) -> CheckResult:
    """Is the text one JSON value (after removing one code fence)?"""
    return _parse_json(text)[1]


def check_json_schema(text: str, validator: Draft202012Validator) -> CheckResult:
    """Is the text JSON that the validator's schema accepts?"""
    value, parsed = _parse_json(text)
    if not parsed.ok:
        return parsed
    error = best_match(validator.iter_errors(value))
    if error is None:
        return parsed
    return CheckResult(False, f"schema: {error.message} (at {error.json_path})", parsed.fenced)


def split_sql(text: str) -> list[str]:
    """The statements of a SQL text, split at semicolons that end a statement (not those in
    strings, identifiers, comments or trigger bodies). A last statement without a semicolon
    is kept; so is an unfinished one, which then fails to compile."""
    statements: list[str] = []
    current = ""
    pieces = text.split(";")
    for piece in pieces[:-1]:
        current += piece + ";"
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    current += pieces[-1]
    if current.strip():
        statements.append(current)
    return statements


def _authorize(action: int, *args: str | None) -> int:
    return sqlite3.SQLITE_DENY if action in _DENIED else sqlite3.SQLITE_OK


def _compile_error(conn: sqlite3.Connection, statement: str) -> str | None:
    """Why SQLite cannot compile the statement (None when it can, or when only unknown names
    stop it). An empty statement (only comments) returns ``""``."""
    head = statement.lstrip().lower()
    sql = statement if head.startswith("explain") else f"EXPLAIN {statement}"
    try:
        conn.execute(sql).fetchall()
    except sqlite3.ProgrammingError as exc:
        message = str(exc)
        # binding parameters (?, :name, $1) parsed; there are just no values for them
        return None if "bindings" in message else message
    except sqlite3.Error as exc:
        message = str(exc)
        if message.startswith(_SCHEMA_LESS):
            return None
        if message in ("incomplete input", 'near ";": syntax error') and not _has_code(statement):
            return ""
        return message
    return None


def _has_code(statement: str) -> bool:
    """Whether anything but whitespace, comments and semicolons is in the statement (asked
    only of statements SQLite found empty or unfinished)."""
    return bool(re.sub(r"--[^\n]*|/\*.*?(\*/|\Z)|;|\s", "", statement, flags=re.DOTALL))


def check_sql(text: str) -> CheckResult:
    """Does every statement of the text compile as SQL (see the module docstring)?"""
    body, fenced = strip_fence(text)
    statements = split_sql(body)
    conn = sqlite3.connect(":memory:")
    try:
        conn.set_authorizer(_authorize)
        compiled = 0
        for number, statement in enumerate(statements, start=1):
            error = _compile_error(conn, statement)
            if error == "":
                continue
            if error is not None:
                where = f"statement {number}: " if len(statements) > 1 else ""
                return CheckResult(False, f"not SQL: {where}{error}", fenced)
            compiled += 1
    finally:
        conn.close()
    if not compiled:
        return CheckResult(False, "no SQL statement", fenced)
    notes = ["inside a ``` fence"] if fenced else []
    if compiled > 1:
        notes.append(f"{compiled} statements")
    return CheckResult(True, ", ".join(notes), fenced)


def check_regex(text: str, pattern: re.Pattern[str]) -> CheckResult:
    """Does the pattern match the whole text (surrounding whitespace removed)?"""
    body = text.strip()
    if pattern.fullmatch(body):
        return CheckResult(True)
    return CheckResult(False, f"does not match /{pattern.pattern}/")


@dataclass(frozen=True, slots=True)
class Expectation:
    """The format a prompt's output must have (``kind`` None: no format, nothing checked)."""

    kind: FormatName | None = None
    schema: dict[str, Any] | None = None
    pattern: re.Pattern[str] | None = None

    def check(self, text: str) -> CheckResult | None:
        """The verdict on one output, or None when the prompt expects no format."""
        if self.kind == "json":
            return check_json(text)
        if self.kind == "json_schema" and self.schema is not None:
            return check_json_schema(text, Draft202012Validator(self.schema))
        if self.kind == "sql":
            return check_sql(text)
        if self.kind == "regex" and self.pattern is not None:
            return check_regex(text, self.pattern)
        return None


class ExpectationError(ValueError):
    """A format, schema or pattern that cannot be used (the message names what is wrong)."""


def expectation(format_name: str, schema: str = "", pattern: str = "") -> Expectation:
    """Build an Expectation from the text of a CSV row's ``format``, ``schema`` and
    ``pattern`` cells; raise ExpectationError when they do not fit together or are invalid."""
    kind = format_name.strip().lower()
    if kind and kind not in FORMATS:
        raise ExpectationError(f"format {format_name!r} is not one of {', '.join(FORMATS)}")
    if schema.strip() and kind != "json_schema":
        raise ExpectationError("schema is given but format is not json_schema")
    if pattern and kind != "regex":
        raise ExpectationError("pattern is given but format is not regex")
    if kind == "json_schema":
        return Expectation("json_schema", schema=_schema(schema))
    if kind == "regex":
        if not pattern:
            raise ExpectationError("format regex needs a pattern")
        try:
            return Expectation("regex", pattern=re.compile(pattern))
        except re.error as exc:
            raise ExpectationError(f"pattern is not a valid regular expression: {exc}") from None
    if kind in ("json", "sql"):
        return Expectation("json" if kind == "json" else "sql")
    return Expectation()


def _schema(text: str) -> dict[str, Any]:
    if not text.strip():
        raise ExpectationError("format json_schema needs a schema")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ExpectationError(f"schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ExpectationError("schema must be a JSON object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ExpectationError(f"schema is not a valid JSON Schema: {exc.message}") from None
    return schema
