"""Background worker for asynchronous screening: screen queued batches, POST the results back.

Callbacks carry ``X-Jingwang-Signature: sha256=<hex>``, an HMAC-SHA256 with the tenant's
callback secret over ``<X-Jingwang-Timestamp>.<body>``, so the platform can check that the
result came from here and is fresh. A failed delivery (network error or non-2xx answer) is
retried after ``backoff * 2**(attempt-1)`` seconds, up to ``callback_max_attempts``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx

from serve import crud
from serve.api.presenters import screen_result
from serve.db_models import ApiKey
from serve.schemas import ScreenItemIn
from serve.security import callback_secret, sign_callback

log = logging.getLogger(__name__)
LEASE_SECONDS = 120.0


class CallbackWorker:
    """Processes due jobs; `run_once` handles one, `start` runs a polling thread."""

    def __init__(self, services: Any, *, client: httpx.Client | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.client = client or httpx.Client(timeout=self.settings.callback_timeout_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Work on one due job; False when none was due."""
        db = self.services.db
        with db.write() as session:
            job = crud.lease_due_job(session, lease_seconds=LEASE_SECONDS)
            if job is None:
                return False
            job_id, tenant, payload, result = job.id, job.tenant, job.payload, job.result
            url, submitter = job.callback_url, session.get(ApiKey, job.api_key_id)
        error: str | None = None
        try:
            if result is None:
                items = [ScreenItemIn.model_validate(entry) for entry in payload]
                outcomes = self.services.screening.screen(submitter=submitter, items=items)
                result = [screen_result(o.item, o.created).model_dump(mode="json") for o in outcomes]
            error = self._deliver(job_id, tenant, url, result)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            log.exception("job %s failed", job_id)
            error = f"{type(exc).__name__}: {exc}"
        with db.write() as session:
            crud.finish_job_attempt(
                session,
                job_id=job_id,
                result=result,
                error=error,
                max_attempts=self.settings.callback_max_attempts,
                backoff_seconds=self.settings.callback_backoff_seconds,
            )
        self.services.metrics.callbacks.labels("ok" if error is None else "error").inc()
        return True

    def _deliver(self, job_id: str, tenant: str, url: str, result: list[dict[str, Any]]) -> str | None:
        body = json.dumps({"job_id": job_id, "items": result}, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        secret = callback_secret(self.settings.secret_key.get_secret_value(), tenant)
        headers = {
            "Content-Type": "application/json",
            "X-Jingwang-Job": job_id,
            "X-Jingwang-Timestamp": timestamp,
            "X-Jingwang-Signature": sign_callback(secret, timestamp, body),
        }
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"callback answered HTTP {response.status_code}"

    def start(self) -> None:
        """Poll for due jobs in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._loop, name="jingwang-callbacks", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the worker
                log.exception("callback worker error")
                busy = False
            if not busy:
                self._stop.wait(self.settings.worker_poll_seconds)

    def stop(self) -> None:
        """Stop the polling thread (waits for the current job)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.close()
