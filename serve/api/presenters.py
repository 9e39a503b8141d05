"""Database rows to response models."""

from __future__ import annotations

from serve.db_models import AuditEntry, Item, Review, ReviewTask, utcnow
from serve.schemas import (
    AuditOut,
    ItemOut,
    ItemSummary,
    ReviewOut,
    ScreenResult,
    TaskOut,
)


def _result_fields(item: Item) -> dict:
    return {
        "id": item.id,
        "external_id": item.external_id,
        "version": item.version,
        "decision": item.decision,
        "labels": item.labels,
        "scores": item.scores,
        # Plain dicts: pydantic validates nested lists in one pass, far faster than building
        # a model per evidence span (an ad can have dozens).
        "evidence": item.evidence,
        "contacts": [
            {"kind": c.kind, "value": c.value, "raw": c.raw, "start": c.start, "end": c.end}
            for c in item.contacts
        ],
        "cluster_id": item.cluster_id,
        "review_status": item.review_status,
        "content_sha256": item.content_sha256,
        "created_at": item.created_at,
    }


def screen_result(item: Item, created: bool) -> ScreenResult:
    """What ``POST /v1/screen`` answers for one post."""
    return ScreenResult.model_validate({"created": created, **_result_fields(item)})


def item_out(item: Item) -> ItemOut:
    """The full stored item."""
    return ItemOut.model_validate(
        {
            "created": False,
            "tenant": item.tenant,
            "text": item.text,
            "url": item.url,
            "source": item.source,
            "author_id": item.author_id,
            "posted_at": item.posted_at,
            "metadata": item.meta,
            "model_version": item.model_version,
            "confirmed_labels": item.confirmed_labels,
            "reviewed_at": item.reviewed_at,
            **_result_fields(item),
        }
    )


def item_summary(item: Item) -> ItemSummary:
    """A list entry (text cut to 200 characters)."""
    return ItemSummary(
        id=item.id,
        tenant=item.tenant,
        external_id=item.external_id,
        version=item.version,
        decision=item.decision,
        labels=item.labels,
        review_status=item.review_status,
        text=item.text[:200],
        created_at=item.created_at,
    )


def task_state(task: ReviewTask) -> str:
    """open | claimed | escalated | done, as reviewers see it (an expired lease is open again)."""
    if task.status == "done":
        return "done"
    if task.status == "claimed" and task.lease_expires_at and task.lease_expires_at > utcnow():
        return "claimed"
    return "escalated" if task.escalated else "open"


def task_out(task: ReviewTask) -> TaskOut:
    """A review task with the start of its text."""
    return TaskOut(
        id=task.id,
        item_id=task.item_id,
        tenant=task.tenant,
        source=task.source,
        priority="block" if task.priority == 2 else "review",
        max_score=task.max_score,
        labels=[label for label in task.labels_key.split(",") if label],
        status=task_state(task),
        claimed_by=task.claimed_by if task_state(task) == "claimed" else None,
        lease_expires_at=task.lease_expires_at if task_state(task) == "claimed" else None,
        required_reviews=task.required_reviews,
        reviews_done=task.reviews_done,
        created_at=task.created_at,
        text=task.item.text[:500],
    )


def review_out(review: Review) -> ReviewOut:
    return ReviewOut(
        id=review.id,
        task_id=review.task_id,
        item_id=review.item_id,
        reviewer_id=review.reviewer_id,
        reviewer=review.reviewer_name,
        stage=review.stage,
        decisions=review.decisions,
        outcome=review.outcome,
        note=review.note,
        created_at=review.created_at,
    )


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        item_id=entry.item_id,
        task_id=entry.task_id,
        before=entry.before,
        after=entry.after,
        note=entry.note,
    )
