"""Referral exports of confirmed items (JSONL, CSV, printable HTML) and training data from reviews.

A referral record carries what an investigator needs to act on and to verify the item:
the URL, the times it was posted, screened and confirmed, the SHA-256 of the exact text,
the evidence spans, the contacts, and the full review chain (every review and every audit
entry on the item).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.labels import CHINESE_NAMES, Label
from serve.db_models import AuditEntry, Item, Review

TEMPLATES = Path(__file__).parent / "templates"
CSV_COLUMNS = [
    "item_id",
    "tenant",
    "external_id",
    "version",
    "url",
    "source",
    "author_id",
    "posted_at",
    "screened_at",
    "confirmed_at",
    "confirmed_labels",
    "content_sha256",
    "text",
    "evidence",
    "contacts",
    "review_chain",
]


def referral_records(
    session: Session,
    *,
    tenant: str | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Confirmed items (newest confirmation last) with their evidence and review chain."""
    query = select(Item).where(Item.review_status == "confirmed").order_by(Item.reviewed_at, Item.id)
    if tenant:
        query = query.where(Item.tenant == tenant)
    if since:
        query = query.where(Item.reviewed_at >= since)
    if until:
        query = query.where(Item.reviewed_at < until)
    items = [
        item
        for item in session.scalars(query.limit(limit))
        if not label or label in (item.confirmed_labels or [])
    ]
    ids = [item.id for item in items]
    reviews: dict[int, list[Review]] = {}
    audits: dict[int, list[AuditEntry]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for review in session.scalars(select(Review).where(Review.item_id.in_(chunk)).order_by(Review.id)):
            reviews.setdefault(review.item_id, []).append(review)
        for entry in session.scalars(
            select(AuditEntry).where(AuditEntry.item_id.in_(chunk)).order_by(AuditEntry.id)
        ):
            audits.setdefault(entry.item_id, []).append(entry)
    return [_record(item, reviews.get(item.id, []), audits.get(item.id, [])) for item in items]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _record(item: Item, reviews: list[Review], audits: list[AuditEntry]) -> dict[str, Any]:
    confirmed = item.confirmed_labels or []
    return {
        "item_id": item.id,
        "tenant": item.tenant,
        "external_id": item.external_id,
        "version": item.version,
        "url": item.url,
        "source": item.source,
        "author_id": item.author_id,
        "posted_at": _iso(item.posted_at),
        "screened_at": _iso(item.created_at),
        "confirmed_at": _iso(item.reviewed_at),
        "confirmed_labels": confirmed,
        "confirmed_labels_zh": [CHINESE_NAMES[Label(label)] for label in confirmed],
        "content_sha256": item.content_sha256,
        "text": item.text,
        "decision": item.decision,
        "scores": item.scores,
        "evidence": item.evidence,
        "contacts": [
            {"kind": c.kind, "value": c.value, "raw": c.raw, "start": c.start, "end": c.end}
            for c in item.contacts
        ],
        "review_chain": {
            "reviews": [
                {
                    "reviewer": r.reviewer_name,
                    "reviewer_id": r.reviewer_id,
                    "stage": r.stage,
                    "decisions": r.decisions,
                    "outcome": r.outcome,
                    "note": r.note,
                    "claimed_at": _iso(r.claimed_at),
                    "decided_at": _iso(r.created_at),
                }
                for r in reviews
            ],
            "audit": [
                {
                    "at": _iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "before": e.before,
                    "after": e.after,
                    "note": e.note,
                }
                for e in audits
            ],
        },
    }


def to_jsonl(records: list[dict[str, Any]]) -> str:
    """One JSON object per line, UTF-8 text kept readable."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def to_csv(records: list[dict[str, Any]]) -> str:
    """One row per item; nested fields (labels, evidence, contacts, review chain) as JSON."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        row = dict(record)
        for column in ("confirmed_labels", "evidence", "contacts", "review_chain"):
            row[column] = json.dumps(record[column], ensure_ascii=False)
        writer.writerow(row)
    return buffer.getvalue()


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True
)


def to_html(records: list[dict[str, Any]], *, generated_at: datetime) -> str:
    """A printable page, one section per item, evidence highlighted."""
    return _environment.get_template("referral.html").render(
        records=records, generated_at=generated_at, highlight=highlight_spans
    )


def highlight_spans(text: str, spans: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """Cut ``text`` into (piece, label-or-None) so that a template can mark the evidence."""
    marks: list[str | None] = [None] * len(text)
    for span in spans:
        start, end = max(0, int(span["start"])), min(len(text), int(span["end"]))
        for i in range(start, end):
            marks[i] = marks[i] or str(span.get("label", "contact"))
    pieces: list[tuple[str, str | None]] = []
    for char, mark in zip(text, marks, strict=True):
        if pieces and pieces[-1][1] == mark:
            pieces[-1] = (pieces[-1][0] + char, mark)
        else:
            pieces.append((char, mark))
    return pieces


def training_records(session: Session) -> Iterator[dict[str, Any]]:
    """Reviewed items as training data: confirmed labels, or ``[]`` for a rejected (false) flag."""
    query = (
        select(Item)
        .where(Item.review_status.in_(("confirmed", "rejected")))
        .order_by(Item.id)
        .execution_options(yield_per=500)
    )
    for item in session.scalars(query):
        record: dict[str, Any] = {
            "id": f"review-{item.tenant}-{item.external_id}-v{item.version}",
            "text": item.text,
            "labels": sorted(item.confirmed_labels or []) if item.review_status == "confirmed" else [],
            "source": f"review:{item.tenant}",
            "note": f"{item.review_status} by review; model said {item.decision} {item.labels}",
        }
        if item.url:
            record["url"] = item.url
        yield record


def export_training(session: Session, out: Path) -> dict[str, int]:
    """Write `training_records` as JSONL to ``out``; return counts by kind."""
    counts = {"confirmed": 0, "rejected": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for record in training_records(session):
            counts["confirmed" if record["labels"] else "rejected"] += 1
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return counts
