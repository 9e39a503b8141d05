"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import text

from serve.api.deps import ServicesDep
from serve.db import is_at_head
from serve.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """People who open the bare address want the console."""
    return RedirectResponse("/console")


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz() -> Health:
    """The process is up (checks nothing else)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready"}},
    summary="Readiness",
)
def readyz(services: ServicesDep) -> Health | JSONResponse:
    """Ready when the database answers, its schema is current and the scorer is loaded."""
    checks: dict[str, str] = {}
    try:
        with services.db.read() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if is_at_head(services.db.engine) else "behind"
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    checks["scorer"] = services.screening.model_version
    ready = checks.get("database") == "ok" and checks.get("migrations") == "ok"
    health = Health(status="ready" if ready else "not ready", checks=checks)
    return health if ready else JSONResponse(health.model_dump(), status_code=503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    summary="Prometheus metrics",
)
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
