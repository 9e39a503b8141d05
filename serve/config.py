"""Service settings, read from the environment (prefix ``JINGWANG_``) and an optional ``.env``.

``DATABASE_URL`` is also read without the prefix, as hosting platforms set it. Outside
``development`` the settings refuse the default secret: a production service must be given
its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "change-me-in-production"


class Settings(BaseSettings):
    """Every knob of the service. Environment variables override the defaults."""

    model_config = SettingsConfigDict(
        env_prefix="JINGWANG_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default="sqlite:///./var/jingwang.db",
        validation_alias=AliasChoices("JINGWANG_DATABASE_URL", "DATABASE_URL", "database_url"),
    )
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    bootstrap_admin_key: SecretStr | None = None
    model: str | None = Field(
        default=None, description="Artifact name or folder; None loads the shipped default."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    max_batch_items: int = Field(default=1000, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    rate_limit_per_minute: int = Field(default=1200, ge=1, description="Default per API key.")
    redis_url: str | None = Field(
        default=None,
        description="Redis holding the rate-limit buckets, shared by all workers; None: per process.",
    )

    lease_seconds: int = Field(default=900, ge=1)
    double_review_block: bool = True
    cluster_min_similarity: float = Field(default=0.6, gt=0.0, le=1.0)

    callback_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts callbacks may go to (JSON list); empty allows any http(s) URL.",
    )
    callback_max_attempts: int = Field(default=6, ge=1)
    callback_backoff_seconds: float = Field(default=2.0, gt=0.0)
    callback_timeout_seconds: float = Field(default=10.0, gt=0.0)
    worker_enabled: bool = True
    worker_poll_seconds: float = Field(default=0.5, gt=0.0)

    run_migrations: bool = True

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, value: str) -> str:
        # Plain postgres URLs (as hosts hand them out) would pick psycopg2, which is not installed.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty JINGWANG_REDIS_URL means no Redis
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("JINGWANG_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment != "development" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError(
                f"JINGWANG_SECRET_KEY is the default {DEFAULT_SECRET!r}; "
                f"set a secret of your own when JINGWANG_ENVIRONMENT={self.environment}"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a SQLite file (or in-memory)."""
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The SQLite file, for creating its folder; None for other databases or memory."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[-1]
        return None if path in ("", ":memory:") else Path(path)
