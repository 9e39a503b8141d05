"""Screening: ``POST /v1/screen`` (one post or a batch; synchronous or with a callback)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Path, status
from fastapi.responses import JSONResponse, Response
from pydantic import Discriminator, Tag

from serve import crud
from serve.api.deps import PlatformKey, ServicesDep
from serve.api.presenters import screen_result
from serve.db_models import Job
from serve.errors import InvalidInput, NotFound
from serve.schemas import (
    NO_NUL,
    JobOut,
    ScreenBatchIn,
    ScreenBatchResult,
    ScreenItemIn,
    ScreenResult,
)

router = APIRouter(prefix="/v1", tags=["screening"])


def _shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "items" in value else "item"


# A batch is recognised by its "items" field, so a validation error names fields of the shape
# the client meant instead of listing both alternatives.
ScreenRequest = Annotated[
    Annotated[ScreenItemIn, Tag("item")] | Annotated[ScreenBatchIn, Tag("batch")],
    Discriminator(_shape),
]


@router.post(
    "/screen",
    response_model=ScreenResult | ScreenBatchResult,
    responses={202: {"model": JobOut, "description": "Batch accepted for asynchronous screening."}},
    summary="Screen one post or a batch",
)
def screen(
    payload: Annotated[ScreenRequest, Body()],
    key: PlatformKey,
    services: ServicesDep,
) -> ScreenResult | Response:
    """Screen posts and store them.

    Send one post (``{"external_id", "text", ...}``) or ``{"items": [...]}``. Resubmitting
    the same external_id and text returns the stored result (``created: false``); a changed
    text stores a new version. Items decided ``review`` or ``block`` enter the review queue.
    With ``callback_url`` the batch is answered with 202 and a job; the results are POSTed
    to the URL when ready, signed (see `GET /v1/admin/tenants/{tenant}/callback-secret`).
    """
    if isinstance(payload, ScreenItemIn):
        outcome = services.screening.screen(submitter=key, items=[payload])[0]
        return screen_result(outcome.item, outcome.created)
    if payload.callback_url:
        services.screening.check_limits(payload.items)
        _check_callback_host(payload.callback_url, services.settings.callback_allowed_hosts)
        job_id = str(uuid.uuid4())
        with services.db.write() as session:
            job = crud.create_job(
                session,
                job_id=job_id,
                submitter=key,
                payload=[item.model_dump(mode="json") for item in payload.items],
                callback_url=payload.callback_url,
            )
            body = _job_out(job).model_dump(mode="json")
        return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)
    outcomes = services.screening.screen(submitter=key, items=payload.items)
    result = ScreenBatchResult(items=[screen_result(o.item, o.created) for o in outcomes])
    # Serialised here: returning the model would make FastAPI validate it again against the
    # response union, which for a thousand results costs about as much as storing them.
    return Response(result.model_dump_json(), media_type="application/json")


@router.get("/jobs/{job_id}", response_model=JobOut, summary="State of an asynchronous job")
def get_job(
    job_id: Annotated[str, Path(max_length=36, pattern=NO_NUL)], key: PlatformKey, services: ServicesDep
) -> JobOut:
    """The job's status, delivery attempts and, once screened, its results."""
    with services.db.read() as session:
        job = session.get(Job, job_id)
        if job is None or job.tenant != key.tenant:
            raise NotFound(f"no job with id {job_id!r}")
        return _job_out(job)


def _check_callback_host(url: str, allowed: list[str]) -> None:
    """With an allow-list configured, callbacks go only to those hosts (the service must not
    be usable to make requests into the network it sits in)."""
    host = (urlsplit(url).hostname or "").lower()
    if allowed and host not in {h.lower() for h in allowed}:
        raise InvalidInput(f"callback_url host {host!r} is not in the allowed callback hosts")


def _job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        status=job.status,
        items=len(job.payload),
        attempts=job.attempts,
        callback_url=job.callback_url,
        last_error=job.last_error,
        result=[ScreenResult.model_validate(r) for r in job.result] if job.result else None,
        created_at=job.created_at,
    )
