"""Engine, sessions and migrations.

SQLite (the default, a file under ./var/) runs in WAL mode, and writing transactions start
with ``BEGIN IMMEDIATE``: a transaction that reads and then writes would otherwise fail with
"database is locked" when another writer committed in between, instead of waiting its turn.
PostgreSQL needs nothing special; the review queue uses ``FOR UPDATE SKIP LOCKED`` there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from serve.config import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    """Create the engine for ``settings.database_url`` (creating a SQLite file's folder)."""
    if settings.is_sqlite:
        path = settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(settings.database_url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that "begin" below decides how to begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front; readers begin deferred and never block a writer (WAL).
        writer = connection.get_execution_options().get("jingwang_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (responses are built after it)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        # ConfigParser treats "%" as interpolation; URL-encoded options contain it.
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database schema to the newest migration (``alembic upgrade head``)."""
    config = alembic_config(engine)
    with engine.execution_options(jingwang_write=True).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_at_head(engine: Engine) -> bool:
    """Whether the database has every migration applied (used by the readiness check)."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads


class Database:
    """The engine and two kinds of session: read-only ones and ones that write.

    On SQLite only the writing kind takes the write lock at its start (``BEGIN IMMEDIATE``);
    readers run concurrently with each other and with a writer (WAL).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = make_sessionmaker(engine)
        self._writer = make_sessionmaker(engine.execution_options(jingwang_write=True))
        # PostgreSQL runs each statement of a READ COMMITTED transaction on a fresh snapshot
        # anyway, so independent lookups lose nothing outside one, and save the BEGIN and the
        # ROLLBACK: two of the few round trips a screening request is made of.
        self._looker = (
            make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
            if engine.dialect.name == "postgresql"
            else self._reader
        )

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; it is rolled back at the end."""
        with self._reader() as session:
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A session for a few independent queries on the hot path (authentication, what a
        screening request has stored already), each seeing what was committed before it ran.
        Not for server-side cursors (``yield_per``) or reads that need one snapshot: use `read`."""
        with self._looker() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits at the end of the block or rolls back on any error."""
        with transaction(self._writer) as session:
            yield session

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name
