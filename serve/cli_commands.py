"""Plain functions behind the service's CLI commands (`jingwang serve`, `keys`, `export-training`).

They take settings and return data; `jingwang/cli.py` parses options, prints and exits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from serve.config import Settings
from serve.db import Database, make_engine, upgrade


def _database(settings: Settings) -> Database:
    engine = make_engine(settings)
    upgrade(engine)
    return Database(engine)


def run_server(settings: Settings, *, log_level: str = "info", workers: int = 1) -> None:
    """Serve the app with uvicorn until interrupted.

    With ``workers > 1`` uvicorn starts that many processes, each building the app from the
    environment; the database is migrated and the first admin key created here, once, first.
    """
    import uvicorn

    from serve.main import create_app

    if workers > 1:
        from models.onnx_model import THREADS_ENV
        from serve.main import bootstrap_admin

        # Each worker process scores batches on its own onnxruntime pool: split the cores
        # between them rather than run workers x cores spinning threads (bench/api.py, two
        # workers on 2 cores: batch throughput 0.60-0.63 of the bare scorer with two threads each).
        os.environ.setdefault(THREADS_ENV, str(max(1, len(os.sched_getaffinity(0)) // workers)))
        db = _database(settings)
        bootstrap_admin(settings, db)
        db.engine.dispose()
        _export_settings(settings)
        scorer = settings.model or "the shipped default"
    else:
        app = create_app(settings)
        scorer = app.state.services.screening.model_version
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"jingwang: serving on {base}" + (f" ({workers} worker processes)" if workers > 1 else "") + "\n"
        f"  review console  {base}/console  (sign in with a reviewer or admin API key)\n"
        f"  API docs        {base}/docs\n"
        f"  database        {settings.database_url}\n"
        f"  scorer          {scorer}",
        file=sys.stderr,
        flush=True,
    )
    if workers > 1:
        uvicorn.run(
            "serve.main:create_app", factory=True, workers=workers, host=settings.host, port=settings.port,
            log_level=log_level, access_log=False,
        )
    else:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, access_log=False)


def _export_settings(settings: Settings) -> None:
    """Hand the settings to worker processes through the environment they inherit."""
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        os.environ[f"JINGWANG_{name.upper()}"] = str(value)


def create_key(
    settings: Settings, *, role: str, tenant: str | None, name: str, rate_limit_per_minute: int | None = None
) -> dict[str, Any]:
    """Create an API key directly in the database; the returned dict holds the key itself."""
    from serve import crud

    db = _database(settings)
    try:
        with db.write() as session:
            row, key = crud.create_api_key(
                session,
                name=name,
                role=role,
                tenant=tenant,
                rate_limit_per_minute=rate_limit_per_minute,
                actor=None,
            )
            return {"id": row.id, "name": row.name, "role": row.role, "tenant": row.tenant, "key": key}
    finally:
        db.engine.dispose()


def list_keys(settings: Settings) -> list[dict[str, Any]]:
    """Every API key (never the key itself)."""
    from sqlalchemy import select

    from serve.db_models import ApiKey

    db = _database(settings)
    try:
        with db.read() as session:
            return [
                {
                    "id": row.id,
                    "name": row.name,
                    "role": row.role,
                    "tenant": row.tenant,
                    "prefix": row.key_prefix,
                    "revoked": row.revoked_at is not None,
                }
                for row in session.scalars(select(ApiKey).order_by(ApiKey.id))
            ]
    finally:
        db.engine.dispose()


def export_training(settings: Settings, out: Path) -> dict[str, int]:
    """Write reviewed items as labelled JSONL training data; return counts (confirmed, rejected)."""
    from serve import exports

    db = _database(settings)
    try:
        with db.read() as session:
            return exports.export_training(session, out)
    finally:
        db.engine.dispose()
