"""Referral exports for investigators and labelled training data for ML engineers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from models.labels import Label
from serve import crud, exports
from serve.api.deps import ReviewerKey, ServicesDep
from serve.db_models import utcnow
from serve.schemas import NO_NUL

router = APIRouter(prefix="/v1/exports", tags=["exports"])

EXPORT_RESPONSES = {
    200: {
        "content": {"application/x-ndjson": {}, "text/csv": {}, "text/html": {}},
        "description": "Confirmed items in the requested format.",
    }
}


@router.get(
    "/referrals", response_class=Response, responses=EXPORT_RESPONSES, summary="Confirmed items for referral"
)
def referrals(
    key: ReviewerKey,
    services: ServicesDep,
    format: Literal["jsonl", "csv", "html"] = "jsonl",  # noqa: A002 - the public parameter name
    tenant: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    label: Label | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """Each record: URL, timestamps, SHA-256 of the text, evidence, contacts and the review chain."""
    with services.db.read() as session:
        records = exports.referral_records(
            session, tenant=tenant, label=label, since=since, until=until, limit=limit
        )
    with services.db.write() as session:
        crud.audit(session, actor=key, action="export.referrals", after={"format": format, "items": len(records)})
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    if format == "html":
        return HTMLResponse(exports.to_html(records, generated_at=utcnow()))
    if format == "csv":
        body, media_type = exports.to_csv(records), "text/csv; charset=utf-8"
    else:
        body, media_type = exports.to_jsonl(records), "application/x-ndjson; charset=utf-8"
    disposition = f'attachment; filename="jingwang-referrals-{stamp}.{format}"'
    return PlainTextResponse(body, media_type=media_type, headers={"Content-Disposition": disposition})


@router.get(
    "/training",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSONL training records."}},
    summary="Reviewed items as labelled training data",
)
def training(key: ReviewerKey, services: ServicesDep) -> PlainTextResponse:
    """``{"id", "text", "labels"}`` per line: confirmed labels, or ``[]`` for a rejected flag."""
    with services.db.read() as session:
        body = exports.to_jsonl(list(exports.training_records(session)))
    return PlainTextResponse(body, media_type="application/x-ndjson; charset=utf-8")
