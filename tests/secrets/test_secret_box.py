"""SecretBox: Fernet round trips, the key file (created lazily, 0600, outside the database),
and a clear error when the key is not the one secrets were stored with."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cupola.secrets import KEY_MISMATCH, SecretBox, SecretKeyError, SecretRegistry
from cupola.settings import Settings


def settings(tmp_path: Path, **extra: object) -> Settings:
    s = Settings.model_validate({"data_dir": str(tmp_path / "data"), **extra})
    return s


def test_round_trip_with_an_explicit_key() -> None:
    box = SecretBox(SecretBox.generate_key(), registry=SecretRegistry())
    secret = {"key": "sk-round-trip-0123456789", "nested": {"a": ["b-value"]}}
    token = box.encrypt(secret)
    assert "sk-round-trip" not in token and token.isascii()
    assert box.decrypt(token) == secret
    assert box.encrypt(secret) != token  # a fresh IV every time


def test_key_file_is_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    s = settings(tmp_path)
    path = s.resolved_secret_key_file
    assert path == tmp_path / "data" / "secret.key"
    box = SecretBox.from_settings(s, registry=SecretRegistry())
    assert not path.exists()  # nothing is written until a secret is
    token = box.encrypt({"key": "first-use-secret"})
    assert path.exists()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    Fernet(path.read_bytes().strip())  # a valid Fernet key
    assert not (tmp_path / "data" / "cupola.db").exists()  # the key is not in any database
    # A second box (another process, a restart) reads the same file and decrypts.
    again = SecretBox.from_settings(s, registry=SecretRegistry())
    assert again.decrypt(token) == {"key": "first-use-secret"}


def test_absolute_key_file_setting(tmp_path: Path) -> None:
    elsewhere = tmp_path / "keys" / "cupola.key"
    s = settings(tmp_path, secret_key_file=str(elsewhere))
    SecretBox.from_settings(s, registry=SecretRegistry()).encrypt({"key": "abcd-efgh"})
    assert elsewhere.exists() and not (tmp_path / "data" / "secret.key").exists()


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "race" / "secret.key"
    boxes = [SecretBox(key_file=path, registry=SecretRegistry()) for _ in range(8)]
    tokens: list[str] = [""] * len(boxes)
    barrier = threading.Barrier(len(boxes))

    def use(i: int) -> None:
        barrier.wait()
        tokens[i] = boxes[i].encrypt({"key": f"secret-{i}"})

    threads = [threading.Thread(target=use, args=(i,)) for i in range(len(boxes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = SecretBox(key_file=path, registry=SecretRegistry())
    assert [reader.decrypt(t)["key"] for t in tokens] == [f"secret-{i}" for i in range(8)]


def test_secret_key_setting_wins_and_writes_no_file(tmp_path: Path) -> None:
    key = SecretBox.generate_key()
    s = settings(tmp_path, secret_key=key)
    box = SecretBox.from_settings(s, registry=SecretRegistry())
    token = box.encrypt({"token": "replica-shared-token"})
    assert not s.resolved_secret_key_file.exists()
    assert SecretBox(key, registry=SecretRegistry()).decrypt(token) == {
        "token": "replica-shared-token"
    }
    assert box.source == "CUPOLA_SECRET_KEY"


def test_wrong_key_gives_a_clear_error(tmp_path: Path) -> None:
    token = SecretBox(SecretBox.generate_key()).encrypt({"key": "stored-with-key-one"})
    other = SecretBox(SecretBox.generate_key(), registry=SecretRegistry())
    with pytest.raises(SecretKeyError) as info:
        other.decrypt(token)
    assert str(info.value) == KEY_MISMATCH
    assert "another key" in KEY_MISMATCH and "CUPOLA_SECRET_KEY" in KEY_MISMATCH
    assert info.value.code == "secret_key_mismatch"
    # A replaced key file is the same mistake.
    path = tmp_path / "secret.key"
    path.write_text(SecretBox.generate_key())
    with pytest.raises(SecretKeyError, match="encrypted with another key"):
        SecretBox(key_file=path, registry=SecretRegistry()).decrypt(token)


def test_a_key_that_is_not_a_fernet_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    box = SecretBox("not-a-fernet-key-but-a-passphrase", registry=SecretRegistry())
    with pytest.raises(SecretKeyError) as info:
        box.encrypt({"key": "whatever-secret"})
    assert "CUPOLA_SECRET_KEY is not a Fernet key" in info.value.message
    assert "not-a-fernet-key" not in info.value.message
    path = tmp_path / "bad.key"
    path.write_text("garbage-key-material")
    with pytest.raises(SecretKeyError, match=r"secret key file .*bad\.key is not a Fernet key"):
        SecretBox(key_file=path, registry=SecretRegistry()).encrypt({"key": "whatever-secret"})


def test_encrypt_and_decrypt_register_values_for_redaction() -> None:
    registry = SecretRegistry()
    box = SecretBox(SecretBox.generate_key(), registry=registry)
    token = box.encrypt({"keys": {"X-Api-Key": "registered-on-encrypt"}})
    assert "registered-on-encrypt" in registry
    fresh = SecretRegistry()
    SecretBox(box._key, registry=fresh).decrypt(token)
    assert "registered-on-encrypt" in fresh
