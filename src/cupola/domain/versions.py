"""Versioned resources and their labels.

An agent, a toolbox (and next, evaluators, datasets and guardrail policies) is a *versioned
resource*: immutable, numbered, content-addressed versions (numbers are never reused) under
one name. A *label* points a name at one version: ``latest`` is implicit (the highest number),
``default`` is the toolbox version its stable endpoint serves, and any other label (``prod``,
``staging`` ...) is set, moved and removed by hand or by promotion. Every move of a label is
kept, for audit.

A version *selector* says which version a reference means: a number, a label, or nothing (the
resource's own choice: ``latest`` for an agent, ``default`` for a toolbox).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cupola.exceptions import UserError

LATEST = "latest"
"""The implicit label of a resource's highest version; it cannot be set or removed."""
DEFAULT = "default"
"""The label of the toolbox version its stable MCP endpoint serves."""

RESOURCE_KINDS = ("agent", "toolbox")
"""The kinds of versioned resource the store holds today."""

LABEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_VERSION = 2**31 - 1
"""The highest version number (the database column is a 32-bit integer)."""

Selector = int | str | None
"""A version number, a label name (``latest`` is the highest version), or None (the
resource's own choice: an agent's latest version, a toolbox's default)."""


@dataclass(frozen=True, slots=True)
class Label:
    """A label: ``label`` on resource ``name`` points at ``version``."""

    name: str
    label: str
    version: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One change of a label, as kept for audit: set (``previous`` None), moved, or removed
    (``version`` None). A removal of every label when the resource is deleted is recorded too."""

    name: str
    label: str
    version: int | None
    previous: int | None
    at: int
    seq: int


def check_label(label: str, param: str = "label") -> str:
    """A label name a user may set: 1-64 letters, digits, ``_``, ``.`` or ``-`` starting with a
    letter (so it never reads as a version number), and not ``latest``."""
    if not isinstance(label, str) or not LABEL_NAME.match(label):
        raise UserError(
            f"a label is 1-64 letters, digits, '_', '.' or '-', starting with a letter, "
            f"not {str(label)[:80]!r}",
            param=param,
            code="invalid_label",
        )
    if label == LATEST:
        raise UserError(
            "'latest' always means the highest version; it cannot be set or removed",
            param=param,
            code="reserved_label",
        )
    return label


def version_number(raw: str | int, param: str = "version") -> int:
    """A version number as the wire gives it (``"3"`` or ``3``)."""
    text = str(raw)
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > 10
        or not 0 < int(text) <= MAX_VERSION
    ):
        raise UserError(
            f"a version is a number from 1 to {MAX_VERSION}, not {text[:80]!r}",
            param=param,
            code="invalid_version",
        )
    return int(text)


def parse_selector(raw: str | int | None, param: str = "version") -> Selector:
    """What a reference's ``version`` field means: nothing is None (the resource's own choice:
    the latest agent version, a toolbox's default), digits are a number, anything else a
    label name (``latest`` among them)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise UserError(f"{param} must be a version number or a label", param=param)
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
        return version_number(raw, param)
    if not isinstance(raw, str) or not LABEL_NAME.match(raw):
        raise UserError(
            f"{param} must be a version number or a label name, not {str(raw)[:80]!r}",
            param=param,
            code="invalid_version",
        )
    return raw
