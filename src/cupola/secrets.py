"""Connection secrets at rest, and keeping them out of logs.

:class:`SecretBox` encrypts a connection's secret (one JSON object) with Fernet
(AES-128-CBC + HMAC-SHA256). Its key never lives in the database: it is
``settings.secret_key`` (``CUPOLA_SECRET_KEY``), else the file
``settings.resolved_secret_key_file``, created with mode 0600 the first time a secret is
encrypted or decrypted. Several replicas sharing one database must share one key, so they
set ``CUPOLA_SECRET_KEY``.

Every secret value a box encrypts or decrypts is added to a :class:`SecretRegistry` (the
process-wide :data:`REGISTRY` by default). :func:`install_redaction` makes every log record
created in the process replace any registered value with ``***``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from cryptography.fernet import Fernet, InvalidToken

from cupola.exceptions import ConfigError
from cupola.settings import Settings

log = logging.getLogger("cupola.secrets")

REDACTED = "***"
"""What a secret value is replaced with."""
MIN_SECRET_LENGTH = 4
"""Shorter values are never registered: redacting them would garble every log line."""
KEY_MISMATCH = (
    "connection secrets were encrypted with another key; "
    "set CUPOLA_SECRET_KEY or secret_key_file to the original"
)
GENERATE_KEY = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class SecretResolver(Protocol):
    """Turns a ``project_connection_id`` into the HTTP headers that carry its credential.

    The store implements it (``cupola.store.connections.ConnectionSecrets``); tools and model
    adapters that reach a service with a project connection's key take one."""

    async def headers_for(self, project: str, connection: str) -> dict[str, str]:
        """Headers for ``connection`` (a connection name or id); raises NotFound."""
        ...


class SecretKeyError(ConfigError):
    """The secrets key is unusable: not a Fernet key, or not the key secrets were stored with."""


class SecretRegistry:
    """Secret values this process has seen; any of them is redacted from text and logs.

    Values are only ever added (a replaced or deleted secret may still be in flight), so the
    registry grows with the number of distinct secrets a process uses.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def add(self, *values: str) -> None:
        """Register values (with their JSON- and URL-escaped spellings, when they differ)."""
        fresh: set[str] = set()
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
                continue
            fresh.add(value)
            fresh.add(orjson.dumps(value).decode()[1:-1])
            fresh.add(quote(value, safe=""))
        if fresh <= self._values:
            return
        with self._lock:
            merged = self._values | fresh
            ordered = sorted(merged, key=len, reverse=True)  # longest first: no partial hits
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            self._values = frozenset(merged)

    def add_secret(self, secret: Mapping[str, Any]) -> None:
        """Register every string inside a secret object (nested objects and lists too)."""
        self.add(*_strings(secret))

    def redact(self, text: str) -> str:
        """``text`` with every registered value replaced by ``***``."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


REGISTRY = SecretRegistry()
"""The process-wide registry every :class:`SecretBox` uses unless given another."""


def redact(text: str, secrets: SecretRegistry | Iterable[str] | None = None) -> str:
    """``text`` with each secret replaced by ``***`` (default: the values in :data:`REGISTRY`)."""
    if secrets is None:
        return REGISTRY.redact(text)
    if isinstance(secrets, SecretRegistry):
        return secrets.redact(text)
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


class SecretBox:
    """Encrypts and decrypts connection secrets (JSON objects) with one Fernet key.

    The key is loaded on first use: a key file that does not exist yet is created then
    (mode 0600), so a server that never stores a secret never writes one.
    """

    def __init__(
        self,
        key: str | bytes | None = None,
        *,
        key_file: Path | None = None,
        registry: SecretRegistry | None = None,
    ) -> None:
        if not key and key_file is None:
            raise ValueError("a SecretBox needs a key or a key file")
        self._key = key.encode() if isinstance(key, str) else key
        self._key_file = None if key else key_file
        self.registry = registry if registry is not None else REGISTRY
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, registry: SecretRegistry | None = None) -> SecretBox:
        """The box cupola.yaml describes: ``secret_key`` if set, else ``secret_key_file``."""
        key = settings.secret_key.get_secret_value().strip() if settings.secret_key else ""
        if key:
            return cls(key, registry=registry)
        return cls(key_file=settings.resolved_secret_key_file, registry=registry)

    @staticmethod
    def generate_key() -> str:
        """A new random key, in the form ``CUPOLA_SECRET_KEY`` takes."""
        return Fernet.generate_key().decode("ascii")

    @property
    def source(self) -> str:
        """Where the key comes from, for messages (never the key itself)."""
        return f"secret key file {self._key_file}" if self._key_file else "CUPOLA_SECRET_KEY"

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            with self._lock:
                if self._fernet is None:
                    raw = self._key if self._key_file is None else _load_key_file(self._key_file)
                    assert raw is not None
                    try:
                        self._fernet = Fernet(raw.strip())
                    except ValueError:
                        raise SecretKeyError(
                            f"{self.source} is not a Fernet key (32 url-safe base64-encoded "
                            f"bytes); make one with: {GENERATE_KEY}",
                            code="invalid_secret_key",
                        ) from None
        return self._fernet

    def encrypt(self, secret: Mapping[str, Any]) -> str:
        """One ciphertext (ASCII) holding the whole secret object."""
        self.registry.add_secret(secret)
        return self._cipher().encrypt(orjson.dumps(dict(secret))).decode("ascii")

    def decrypt(self, ciphertext: str) -> dict[str, Any]:
        """The secret object; raises :class:`SecretKeyError` when the key does not fit."""
        cipher = self._cipher()
        try:
            plain = cipher.decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretKeyError(KEY_MISMATCH, code="secret_key_mismatch") from None
        secret = orjson.loads(plain)
        if not isinstance(secret, dict):
            raise SecretKeyError("a stored connection secret is not a JSON object")
        self.registry.add_secret(secret)
        return secret


def _load_key_file(path: Path) -> bytes:
    """The key in ``path``, creating the file (mode 0600) when it does not exist."""
    for _attempt in range(40):
        try:
            data = path.read_bytes().strip()
        except FileNotFoundError:
            created = _create_key_file(path)
            if created is not None:
                return created
            continue  # another process created it first: read theirs
        except OSError as exc:
            raise SecretKeyError(f"cannot read secret key file {path}: {exc.strerror}") from None
        if data:
            _warn_if_shared(path)
            return data
        time.sleep(0.05)  # another process is still writing it
    raise SecretKeyError(f"secret key file {path} is empty")


def _create_key_file(path: Path) -> bytes | None:
    key = Fernet.generate_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as exc:
        raise SecretKeyError(f"cannot create secret key file {path}: {exc.strerror}") from None
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning(
        "created the connection secrets key %s; back it up (stored connection secrets "
        "cannot be read without it) and share it between replicas as CUPOLA_SECRET_KEY",
        path,
    )
    return key


def _warn_if_shared(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s is readable by other users; chmod 600 it", path)


class RedactionFilter(logging.Filter):
    """Rewrites a log record so no registered secret value appears in it; never drops one.

    A filter on a *logger* only sees records logged on that very logger, not those
    propagated from its children; :func:`install_redaction` therefore redacts at record
    creation. Add this filter to a handler to cover records made elsewhere.
    """

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self.registry = registry if registry is not None else REGISTRY

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.registry)
        return True


_EXC_FORMATTER = logging.Formatter()


def _redact_arg(value: Any, registry: SecretRegistry) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    clean = registry.redact(text)
    return value if clean == text else clean


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string: logging reports msg and args verbatim
        return f"{record.msg} {record.args}"


def redact_record(record: logging.LogRecord, registry: SecretRegistry) -> None:
    """Replace registered values in a record's message, exception text and stack.

    Arguments are redacted one by one, so formatters that read ``record.args`` (uvicorn's
    access log) still work; only if a secret remains is the message rendered and the
    arguments dropped."""
    if not len(registry):
        return
    message = _message(record)
    if registry.redact(message) != message:
        if isinstance(record.msg, str):
            record.msg = registry.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a, registry) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v, registry) for k, v in record.args.items()}
        message = _message(record)
        if registry.redact(message) != message:
            record.msg, record.args = registry.redact(message), None
            record.__dict__.pop("color_message", None)  # uvicorn's coloured copy of msg
    if record.exc_info and not record.exc_text:
        record.exc_text = _EXC_FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = registry.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = registry.redact(record.stack_info)


_installed: list[SecretRegistry] = []
_PLAIN_FACTORIES: set[Callable[..., logging.LogRecord]] = {logging.LogRecord}
"""Record factories that make a plain :class:`logging.LogRecord` and at most redact it:
the standard one and those :func:`install_redaction` installed on top of one of these."""


def plain_log_records() -> bool:
    """Whether the process makes its log records as :class:`logging.LogRecord` does, with
    only :func:`install_redaction` on top (no other library's record factory). A hot path
    may then build its own record for a finished message, after
    :func:`redact_logged`, and stay exactly as redacted as every other record."""
    return logging.getLogRecordFactory() in _PLAIN_FACTORIES


def redact_logged(text: str) -> str:
    """``text`` as the installed redaction leaves a log message: every value of every
    registry :func:`install_redaction` installed replaced by ``***``."""
    for registry in _installed:
        text = registry.redact(text)
    return text


def install_redaction(source: SecretBox | SecretRegistry | None = None) -> RedactionFilter:
    """Redact the registry's values (a box's registry, default :data:`REGISTRY`) from every
    log record the process creates, whichever logger or handler it goes to. Idempotent.
    Returns a :class:`RedactionFilter` on the same registry, also added to the root logger."""
    if isinstance(source, SecretBox):
        registry = source.registry
    else:
        registry = source if source is not None else REGISTRY
    redaction = RedactionFilter(registry)
    if any(r is registry for r in _installed):
        return redaction
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record, registry)
        return record

    logging.setLogRecordFactory(factory)
    if previous in _PLAIN_FACTORIES:
        _PLAIN_FACTORIES.add(factory)
    _installed.append(registry)
    root = logging.getLogger()
    if not any(isinstance(f, RedactionFilter) and f.registry is registry for f in root.filters):
        root.addFilter(redaction)
    return redaction
