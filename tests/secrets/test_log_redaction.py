"""Known secret values never reach a log line: redact(), the registry and the log filter."""

from __future__ import annotations

import io
import logging

import pytest

from cupola.secrets import (
    REDACTED,
    REGISTRY,
    RedactionFilter,
    SecretBox,
    SecretRegistry,
    install_redaction,
    plain_log_records,
    redact,
    redact_logged,
)


def test_redact_helper() -> None:
    text = "Authorization: Bearer sk-abc123456 and again sk-abc123456, not sk-abc"
    assert redact(text, ["sk-abc123456"]) == ("Authorization: Bearer *** and again ***, not sk-abc")
    assert redact("nothing here", ["sk-abc123456"]) == "nothing here"
    # Longer secrets first, so one containing another is replaced whole.
    assert redact("k=abcd-efgh-ijkl", ["abcd", "abcd-efgh-ijkl"]) == "k=***"


def test_registry_covers_escaped_spellings_and_ignores_tiny_values() -> None:
    registry = SecretRegistry()
    registry.add('p@ss/word"quote', "ab", "")
    assert len(registry) > 0 and "ab" not in registry
    assert registry.redact('raw p@ss/word"quote') == f"raw {REDACTED}"
    assert registry.redact('json "p@ss/word\\"quote"') == f'json "{REDACTED}"'
    assert registry.redact("url ?k=p%40ss%2Fword%22quote") == f"url ?k={REDACTED}"
    assert registry.redact("ab stays") == "ab stays"


def test_installed_redaction_rewrites_every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-log-secret-9f8e7d"
    box = SecretBox(SecretBox.generate_key())  # the process-wide registry
    install_redaction(box)
    install_redaction(box)  # idempotent
    box.decrypt(box.encrypt({"key": secret}))
    assert secret in REGISTRY

    log = logging.getLogger("cupola.tests.redaction.child")  # propagates to the root
    with caplog.at_level(logging.INFO):
        log.info("calling upstream with key %s", secret)
        log.warning(f"header Authorization: Bearer {secret}")
        try:
            raise RuntimeError(f"upstream rejected {secret}")
        except RuntimeError:
            log.exception("tool call failed")
        log.info("%d%% done, nothing secret", 50)
        log.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/x?key={secret}", "1.1", 200)
        log.info("%(who)s used %(key)s", {"who": "tool", "key": secret})

    assert secret not in caplog.text
    assert "calling upstream with key ***" in caplog.text
    assert "Bearer ***" in caplog.text
    assert "RuntimeError: upstream rejected ***" in caplog.text
    assert "50% done, nothing secret" in caplog.text
    assert '"GET /x?key=*** HTTP/1.1" 200' in caplog.text
    assert "tool used ***" in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()
    # Arguments keep their shape for formatters that unpack them (uvicorn's access log).
    access = next(r for r in caplog.records if "HTTP/%s" in str(r.msg))
    assert access.args == ("127.0.0.1:5", "GET", "/x?key=***", "1.1", 200)


def test_filter_on_a_handler(caplog: pytest.LogCaptureFixture) -> None:
    registry = SecretRegistry()
    registry.add("handler-level-secret")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter(registry))
    log = logging.getLogger("cupola.tests.redaction.handler")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("value=%s", "handler-level-secret")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert stream.getvalue() == "value=***\n"


def test_plain_records_and_redact_logged() -> None:
    """``plain_log_records`` holds while only the standard factory and the redaction's own
    are in place, and stops holding when another library installs one; ``redact_logged``
    redacts as the installed factory does."""
    install_redaction()
    REGISTRY.add("sk-redact-logged-secret-31")
    assert plain_log_records()
    assert redact_logged("GET /x/sk-redact-logged-secret-31 200") == "GET /x/*** 200"
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *a, **k: previous(*a, **k))
    try:
        assert not plain_log_records()
    finally:
        logging.setLogRecordFactory(previous)
    assert plain_log_records()
