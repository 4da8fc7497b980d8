"""A missing or invalid setting stops start-up with a message naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from powertrip.cli.dev import _local_secrets
from powertrip.config import ConfigError, load_config
from powertrip.settings import API_SECRETS, SettingsError, load_settings
from powertrip.signing import MIN_KEY_CHARS

REPO = Path(__file__).resolve().parents[1]


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRIP_")}
    env.update(values)
    return env


def test_missing_api_secrets_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("POWERTRIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("POWERTRIP_API_TOKEN", "x")
    settings = load_settings()  # the CLI and the worker need none of the API's secrets
    with pytest.raises(SettingsError) as caught:
        settings.require(*API_SECRETS, who="API")
    assert "POWERTRIP_WEBHOOK_TOKEN" in str(caught.value)
    assert "POWERTRIP_SLACK_SIGNING_SECRET" in str(caught.value)
    assert "POWERTRIP_API_TOKEN" not in str(caught.value)


def test_api_refuses_to_start_without_its_secrets() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api", "--port", "0"],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "POWERTRIP_WEBHOOK_TOKEN" in result.stderr and "POWERTRIP_API_TOKEN" in result.stderr


def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTRIP_WEBHOOK_TOKEN", "w")
    monkeypatch.setenv("POWERTRIP_API_TOKEN", "a")
    monkeypatch.setenv("POWERTRIP_SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("POWERTRIP_MAX_BODY_BYTES", "lots")
    with pytest.raises(SettingsError, match="POWERTRIP_MAX_BODY_BYTES"):
        load_settings()


def start_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python worker.py` with `env`, as far as its start-up checks let it get."""
    return subprocess.run(
        [sys.executable, str(REPO / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_refuses_to_start_without_a_security_channel() -> None:
    result = start_worker(clean_env())
    assert result.returncode != 0
    assert "POWERTRIP_SECURITY_CHANNEL" in result.stderr


KEY = "k" * 32


@pytest.mark.parametrize(
    ("keys", "named", "expected"),
    [
        ({}, "POWERTRIP_DECISION_KEY", "missing settings for the worker"),
        ({"POWERTRIP_DECISION_KEY": "short"}, "POWERTRIP_DECISION_KEY", "at least 32"),
        ({"POWERTRIP_DECISION_KEY": KEY}, "POWERTRIP_CLI_DECISION_KEY", "missing settings"),
        (
            {"POWERTRIP_DECISION_KEY": KEY, "POWERTRIP_CLI_DECISION_KEY": KEY},
            "POWERTRIP_CLI_DECISION_KEY",
            "must differ",
        ),
        (
            {
                "POWERTRIP_DECISION_KEY": KEY,
                "POWERTRIP_CLI_DECISION_KEY": "c" * 32,
                "POWERTRIP_CLI_DECISION_KEY_PREVIOUS": KEY,
            },
            "POWERTRIP_CLI_DECISION_KEY",
            "must differ",
        ),
    ],
    ids=["none", "short", "no CLI key", "one key for both", "CLI's previous is the API's"],
)
def test_worker_refuses_to_start_without_both_decision_keys(
    keys: dict[str, str], named: str, expected: str
) -> None:
    """The worker verifies every decision with the key of its signer: without both it could
    not count the API's or the CLI's, and with one key for both every CLI operator could sign
    as the API."""
    result = start_worker(clean_env(POWERTRIP_SECURITY_CHANNEL="C1", **keys))
    assert result.returncode != 0
    assert expected in result.stderr and named in result.stderr


def test_powertrip_dev_adds_both_decision_keys_to_an_older_secrets_file(tmp_path: Path) -> None:
    secrets_env = tmp_path / "secrets.env"
    secrets_env.write_text("POWERTRIP_WEBHOOK_TOKEN=kept\n")
    values = _local_secrets(secrets_env)
    assert values["POWERTRIP_WEBHOOK_TOKEN"] == "kept"
    assert len(values["POWERTRIP_DECISION_KEY"]) >= MIN_KEY_CHARS
    assert len(values["POWERTRIP_CLI_DECISION_KEY"]) >= MIN_KEY_CHARS
    assert values["POWERTRIP_CLI_DECISION_KEY"] != values["POWERTRIP_DECISION_KEY"]
    assert _local_secrets(secrets_env) == values  # written once, then kept
    assert secrets_env.stat().st_mode & 0o777 == 0o600


def test_worker_refuses_a_broken_config_file(tmp_path: Path) -> None:
    config = tmp_path / "powertrip.yaml"
    config.write_text("security_channel: C1\nusers:\n  alice: {slak: U1}\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "worker.py")],
        env=clean_env(
            POWERTRIP_WEBHOOK_TOKEN="w",
            POWERTRIP_API_TOKEN="a",
            POWERTRIP_SLACK_SIGNING_SECRET="s",
            POWERTRIP_CONFIG=str(config),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "users.alice" in result.stderr and str(config) in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("users: [alice]\n", "users"),
        ("renotify_after: soon\n", "renotify_after"),
        ("renotify_after: 0s\n", "renotify_after"),
        ("security_team: U1\n", "security_team"),
        ("users:\n  alice: {}\n", "users.alice"),
        ("rule_packs: [nope]\n", "unknown rule pack 'nope'"),
        ("security_channel: [\n", "not valid YAML"),
    ],
)
def test_config_errors_say_where(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert expected in str(caught.value)


def test_example_config_loads() -> None:
    config = load_config(REPO / "examples" / "config.yaml")
    assert config.security_channel == "C0SECURITY"
    assert config.renotify_after.total_seconds() == 900
    assert any(rule.id == "sshd-accepted" for rule in config.rules)
