"""Settings: environment variables, the DATABASE_URL alias, refusing default secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve.config import DEFAULT_SECRET, Settings


def test_defaults_work_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JINGWANG_ENVIRONMENT", "JINGWANG_DATABASE_URL", "DATABASE_URL", "JINGWANG_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.database_url == "sqlite:///./var/jingwang.db"
    assert settings.max_batch_items == 1000 and settings.max_text_chars == 20_000


def test_default_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="JINGWANG_SECRET_KEY is the default"):
        Settings(_env_file=None, environment="production")
    assert Settings(_env_file=None, environment="production", secret_key="s3cret").secret_key.get_secret_value() == "s3cret"
    assert DEFAULT_SECRET not in repr(Settings(_env_file=None))


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/jw")
    monkeypatch.setenv("JINGWANG_MAX_BATCH_ITEMS", "50")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://u@db:5432/jw"
    assert settings.max_batch_items == 50


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINGWANG_MAX_BATCH_ITEMS", "0")
    with pytest.raises(ValidationError, match="max_batch_items"):
        Settings(_env_file=None)
