from __future__ import annotations

import pickle

import pytest

from segbridge.core.errors import ConfigurationError
from segbridge.core.secrets import Secret, looks_masked
from segbridge.core.settings import load_settings


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("abc123plaintext")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret]  # noqa: UP031 - the old style must mask too
    assert all("abc123plaintext" not in text for text in shown)
    assert secret.reveal() == "abc123plaintext"


def test_a_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("abc"))


@pytest.mark.parametrize("value", ["********", "••••••", "****abcd", "xxxxxxxx", " ******** "])
def test_masks_echoed_back_are_recognised(value: str) -> None:
    assert looks_masked(value)


@pytest.mark.parametrize("value", ["wk3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b", "xyz", "abcx"])
def test_real_keys_are_not_taken_for_masks(value: str) -> None:
    assert not looks_masked(value)


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(port=70000, retest_interval_seconds=1, database_url="mysql://x",
                      log_level="LOUD")
    message = caught.value.message
    for name in ("SEGBRIDGE_PORT", "SEGBRIDGE_RETEST_INTERVAL_SECONDS",
                 "SEGBRIDGE_DATABASE_URL", "SEGBRIDGE_LOG_LEVEL"):
        assert name in message
    assert len(caught.value.details) == 4


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGBRIDGE_PORT", "8123")
    monkeypatch.setenv("SEGBRIDGE_HOME", "/tmp/sb-home")
    settings = load_settings()
    assert settings.port == 8123
    assert settings.resolved_database_url == "sqlite:////tmp/sb-home/segbridge.sqlite3"
    assert str(settings.resolved_master_key_file) == "/tmp/sb-home/master.key"
