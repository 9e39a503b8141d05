"""Builds the app: ``create_app(settings)``. ``jingwang serve`` runs it with uvicorn.

On creation the app migrates the database (``alembic upgrade head``), loads the scorer
once, and on a database without keys creates the first admin key (from
``JINGWANG_BOOTSTRAP_ADMIN_KEY``, or a random one printed once to stderr).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from serve import crud
from serve.api.deps import Services
from serve.api.routes import admin, console, exports, health, items, review, screen
from serve.config import Settings
from serve.db import Database, make_engine, upgrade
from serve.db_models import ApiKey
from serve.errors import RateLimited, ServeError
from serve.limits import BodySizeLimit
from serve.metrics import Metrics, MetricsMiddleware
from serve.screening import ScreenerLike, ScreeningService
from serve.security import Role, SessionSigner, make_rate_limiter
from serve.worker import CallbackWorker

STATIC_DIR = console.STATIC_DIR


def load_screener(settings: Settings) -> ScreenerLike:
    """The scorer named by ``settings.model`` (None: the shipped default artifact)."""
    from models.onnx_model import SMALL_THREADS_ENV
    from models.scorer import Screener

    # Single posts arrive on many request threads at once: each is scored on a single-threaded
    # session, side by side, with no onnxruntime pool threads to wait for or spin against the
    # request threads. Batches keep the multi-threaded session, spinning (bench/api.py, three
    # runs each: with a sleeping pool PostgreSQL batches reached 254-312 items/s, spinning
    # 344-400, p99 of single posts no worse).
    os.environ.setdefault(SMALL_THREADS_ENV, "1")
    return Screener.load(settings.model)


def create_app(
    settings: Settings | None = None,
    *,
    screener: ScreenerLike | None = None,
    start_worker: bool | None = None,
) -> FastAPI:
    """Build the service. Tests pass a small ``screener``; ``start_worker=False`` leaves
    asynchronous jobs to explicit `CallbackWorker.run_once` calls."""
    # Requests are scored concurrently in a thread pool and onnxruntime has threads of its
    # own: multi-threaded BLAS on top oversubscribes the cores (bench/api.py on SQLite with
    # the ensemble: p99 1,507 ms with BLAS threads, 21 ms with one).
    threadpool_limits(limits=1, user_api="blas")
    settings = settings or Settings()
    engine = make_engine(settings)
    if settings.run_migrations:
        upgrade(engine)
    db = Database(engine)
    screener = screener or load_screener(settings)
    metrics = Metrics()
    services = Services(
        settings=settings,
        db=db,
        screener=screener,
        screening=ScreeningService(screener=screener, db=db, settings=settings, metrics=metrics),
        metrics=metrics,
        rate_limiter=make_rate_limiter(settings.redis_url),
        signer=SessionSigner(settings.secret_key.get_secret_value()),
    )
    bootstrap_admin(settings, db)
    worker = CallbackWorker(services)
    run_worker = settings.worker_enabled if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The scorer and lexicon are large and live forever: moving them out of the garbage
        # collector's reach keeps full collections (latency spikes) short. One screening first,
        # so that what loads lazily (jieba's dictionary, onnxruntime's buffers) is frozen too:
        # frozen before it, full collections under load took 60-160 ms (bench/api.py).
        screener.screen(["预热：载入分词词典"])
        gc.collect()
        gc.freeze()
        if run_worker:
            worker.start()
        try:
            yield
        finally:
            if run_worker:
                worker.stop()
            engine.dispose()

    app = FastAPI(
        title="jingwang screening service",
        version="0.1.0",
        description=(
            "Screens Chinese posts for trafficking, child-sale, illegal-adoption, surrogacy, "
            "birth-document-fraud and organ-trade ads; queues flagged items for review; exports "
            "confirmed cases for referral. Authenticate with an API key in `X-API-Key`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from vendored files: the default loads them from a CDN
        redoc_url=None,
    )
    app.state.services = services
    app.state.worker = worker
    for router in (
        screen.router,
        items.router,
        review.router,
        admin.router,
        exports.router,
        health.router,
        console.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API docs",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    _add_error_handlers(app)
    console.register(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def bootstrap_admin(settings: Settings, db: Database) -> None:
    """Create the first admin key on an empty database."""
    with db.write() as session:
        if session.scalar(select(ApiKey.id).limit(1)) is not None:
            return
        given = settings.bootstrap_admin_key.get_secret_value() if settings.bootstrap_admin_key else None
        _, key = crud.create_api_key(
            session, name="bootstrap admin", role=Role.ADMIN, tenant=None, actor=None, key=given
        )
    if given is None:
        print(
            "jingwang: created the first admin API key (shown only now; keep it):\n"
            f"  {key}\n"
            "  sign in to the console with it, or send it as the X-API-Key header.",
            file=sys.stderr,
            flush=True,
        )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(_request: Request, exc: ServeError) -> JSONResponse:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_clean_error(e) for e in exc.errors()]
        summary = "; ".join(f"{e['where']}: {e['msg']}" for e in errors[:5])
        if len(errors) > 5:
            summary += f"; and {len(errors) - 5} more"
        return JSONResponse({"detail": summary, "errors": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(exc.__cause__, UnicodeDecodeError):
            detail = f"request body is not valid UTF-8 ({exc.__cause__.reason} at byte {exc.__cause__.start})"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


# Union members and tags that pydantic puts in error locations but mean nothing to a client.
_LOC_NOISE = {"item", "batch", "function-after[_check_string(), str]"}


def _clean_error(error: dict[str, Any]) -> dict[str, Any]:
    loc = [part for part in error.get("loc", ()) if str(part) not in _LOC_NOISE and "function-" not in str(part)]
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    msg = error.get("msg", "invalid")
    if error.get("type") == "json_invalid":
        msg = f"invalid JSON: {error.get('ctx', {}).get('error', 'cannot parse')}"
        where = "body"
    elif error.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif error.get("type") == "value_error":
        msg = msg.removeprefix("Value error, ")
    return {"where": where or "request", "msg": msg, "type": error.get("type")}
