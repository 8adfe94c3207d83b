"""cupola.yaml is a user-facing contract: its shape, ${VAR} expansion and CUPOLA_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from cupola.exceptions import ConfigError
from cupola.settings import DEFAULT_CONFIG, load_settings

ISSUE_EXAMPLE = """\
project: default
deployments:
  - name: local-small        # the embedded default
    provider: embedded
  - name: echo               # deterministic, for tests and demos
    provider: scripted
    mode: echo
  - name: gpt-4o
    provider: openai
    model: gpt-4o
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cupola.yaml"
    path.write_text(text)
    return path


def test_documented_shape_loads_and_expands_env(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ISSUE_EXAMPLE), env={"OPENAI_API_KEY": "sk-test"})
    assert [d.name for d in settings.deployments] == ["local-small", "echo", "gpt-4o"]
    gpt = settings.deployment("gpt-4o")
    assert gpt is not None and gpt.api_key is not None
    assert gpt.api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(settings)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / '.cupola' / 'cupola.db'}"
    assert settings.default_model == "local-small"


def test_unset_env_reference_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\{OPENAI_API_KEY\}"):
        load_settings(write(tmp_path, ISSUE_EXAMPLE), env={})


def test_env_default_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "project: ${PROJECT_NAME:-fallback}\n")
    assert load_settings(path, env={}).project == "fallback"
    assert load_settings(path, env={"PROJECT_NAME": "p2"}).project == "p2"


def test_cupola_env_vars_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "project: default\nserver:\n  port: 9000\n")
    settings = load_settings(
        path,
        env={
            "CUPOLA_PROJECT": "staging",
            "CUPOLA_SERVER__PORT": "9100",
            "CUPOLA_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "CUPOLA_AUTH__REQUIRED": "always",
        },
    )
    assert settings.project == "staging"
    assert settings.server.port == 9100
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert settings.auth.required == "always"


def test_no_file_gives_the_embedded_and_echo_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "{}\n"), env={})
    assert [(d.name, d.provider) for d in settings.deployments] == [
        ("local-small", "embedded"),
        ("echo", "scripted"),
    ]


def test_written_default_config_matches_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, DEFAULT_CONFIG), env={})
    assert [d.name for d in settings.deployments] == ["local-small", "echo"]
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8765)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("project: [unclosed\n", "not valid YAML"),
        ("- a list\n", "mapping"),
        ("deployments:\n  - name: x\n    provider: nonsense\n", "provider"),
        (
            "deployments:\n  - {name: a, provider: scripted}\n  - {name: a, provider: scripted}\n",
            "twice",
        ),
        ("unknown_key: 1\n", "unknown_key"),
        ("project: 'has space'\n", "project"),
    ],
)
def test_invalid_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env={})
