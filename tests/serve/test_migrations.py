"""Alembic migrations: a fresh database reaches head, matching the ORM models; re-running is a no-op."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from serve.db import is_at_head, make_engine, upgrade
from serve.db_models import Base
from tests.serve.conftest import make_settings


def test_migrations_create_the_models_schema(database_url: str) -> None:
    engine = make_engine(make_settings(database_url))
    try:
        upgrade(engine)
        upgrade(engine)  # idempotent: a restart migrates nothing
        assert is_at_head(engine)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()
