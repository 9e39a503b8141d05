"""Asynchronous screening: 202 and a job, results POSTed to the callback, signed, retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from serve.db_models import Job
from tests.serve.conftest import BENIGN, SURROGACY_AD


class Receiver:
    """A loopback HTTP server that records callbacks and answers with queued status codes."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002 - keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_async_batch_is_screened_and_delivered_signed(
    app, client: TestClient, platform: dict, admin: dict, receiver: Receiver
) -> None:
    items = [{"external_id": "a1", "text": SURROGACY_AD}, {"external_id": "a2", "text": BENIGN}]
    response = client.post("/v1/screen", json={"items": items, "callback_url": receiver.url}, headers=platform)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["items"] == 2

    assert app.state.worker.run_once() is True
    (headers, body), = receiver.requests
    payload = json.loads(body)
    assert payload["job_id"] == job["id"]
    assert [r["decision"] for r in payload["items"]] == ["block", "pass"]
    secret = client.get("/v1/admin/tenants/alpha/callback-secret", headers=admin).json()["secret"]
    expected = hmac.new(secret.encode(), headers["X-Jingwang-Timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["X-Jingwang-Signature"] == "sha256=" + expected.hexdigest()
    state = client.get(f"/v1/jobs/{job['id']}", headers=platform).json()
    assert state["status"] == "delivered" and state["attempts"] == 1
    # The items are stored like synchronous ones.
    assert client.get(f"/v1/items/{payload['items'][0]['id']}", headers=platform).status_code == 200


def test_failed_callback_is_retried_with_backoff(
    app, client: TestClient, platform: dict, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    items = [{"external_id": "r1", "text": SURROGACY_AD}]
    job = client.post("/v1/screen", json={"items": items, "callback_url": receiver.url}, headers=platform).json()
    worker = app.state.worker
    db = app.state.services.db
    backoff = app.state.services.settings.callback_backoff_seconds

    assert worker.run_once() is True
    state = client.get(f"/v1/jobs/{job['id']}", headers=platform).json()
    assert state["status"] == "delivering" and state["attempts"] == 1
    assert state["last_error"] == "callback answered HTTP 500"
    assert worker.run_once() is False  # not due yet: it waits for the back-off
    with db.read() as session:
        delay = session.execute(select(Job.next_attempt_at, Job.updated_at)).one()
    assert pytest.approx((delay[0] - delay[1]).total_seconds(), abs=1) == backoff

    for expected_attempts in (2, 3):
        with db.write() as session:
            session.execute(text("UPDATE jobs SET next_attempt_at = updated_at"))
        assert worker.run_once() is True
        assert client.get(f"/v1/jobs/{job['id']}", headers=platform).json()["attempts"] == expected_attempts
    state = client.get(f"/v1/jobs/{job['id']}", headers=platform).json()
    assert state["status"] == "delivered" and state["result"][0]["decision"] == "block"
    assert len(receiver.requests) == 3
    # Every attempt carried the same results (screened once).
    assert len({json.loads(body)["items"][0]["id"] for _, body in receiver.requests}) == 1


def test_job_gives_up_after_max_attempts(app, client: TestClient, platform: dict) -> None:
    app.state.services.settings.callback_max_attempts = 2
    items = [{"external_id": "g1", "text": BENIGN}]
    # Nothing listens on this loopback port: every attempt fails to connect.
    job = client.post(
        "/v1/screen", json={"items": items, "callback_url": "http://127.0.0.1:9/none"}, headers=platform
    ).json()
    worker, db = app.state.worker, app.state.services.db
    worker.run_once()
    with db.write() as session:
        session.execute(text("UPDATE jobs SET next_attempt_at = updated_at"))
    worker.run_once()
    state = client.get(f"/v1/jobs/{job['id']}", headers=platform).json()
    assert state["status"] == "failed" and state["attempts"] == 2
    assert "ConnectError" in state["last_error"]


def test_jobs_are_per_tenant(client: TestClient, platform: dict, other_platform: dict, receiver: Receiver) -> None:
    job = client.post(
        "/v1/screen", json={"items": [{"external_id": "j", "text": BENIGN}], "callback_url": receiver.url}, headers=platform
    ).json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=other_platform).status_code == 404


def test_callback_url_must_be_http(client: TestClient, platform: dict) -> None:
    body = {"items": [{"external_id": "j", "text": BENIGN}], "callback_url": "file:///etc/passwd"}
    response = client.post("/v1/screen", json=body, headers=platform)
    assert response.status_code == 422 and "callback_url: must be an http" in response.json()["detail"]


def test_callback_hosts_can_be_restricted(app, client: TestClient, platform: dict, receiver: Receiver) -> None:
    app.state.services.settings.callback_allowed_hosts = ["hooks.example.com"]
    body = {"items": [{"external_id": "h", "text": BENIGN}], "callback_url": receiver.url}
    response = client.post("/v1/screen", json=body, headers=platform)
    assert response.status_code == 422
    assert "'127.0.0.1' is not in the allowed callback hosts" in response.json()["detail"]
    app.state.services.settings.callback_allowed_hosts = ["127.0.0.1"]
    assert client.post("/v1/screen", json=body, headers=platform).status_code == 202
