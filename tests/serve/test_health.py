"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from serve.db import Database


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["migrations"] == "ok"
    assert ready.json()["checks"]["scorer"] == "fake-rules:fake:1"


def test_readiness_fails_when_the_database_is_unreachable(app, client: TestClient) -> None:
    services = app.state.services
    working = services.db
    services.db = Database(create_engine("sqlite:////nonexistent-dir/jingwang.db"))
    try:
        response = client.get("/readyz")
    finally:
        services.db = working
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"]["database"] == "error: OperationalError"


def test_metrics_exposes_requests_and_latency(client: TestClient) -> None:
    client.get("/healthz")
    body = client.get("/metrics").text
    assert 'jingwang_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
    assert "jingwang_http_request_duration_seconds_bucket" in body


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/v1/screen" in schema["paths"]
    assert "X-API-Key" in str(schema["components"]["securitySchemes"])
    assert not any(path.startswith("/console") for path in schema["paths"])
