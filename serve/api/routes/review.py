"""The review workflow: queue, claim (a lease), decide, release, statistics and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from sqlalchemy import func, select

from models.labels import Label
from serve import crud
from serve.api.deps import AdminKey, ReviewerKey, ServicesDep
from serve.api.presenters import audit_out, review_out, task_out
from serve.db_models import AuditEntry, Review, ReviewTask
from serve.errors import NotFound
from serve.schemas import (
    MAX_ID,
    NO_NUL,
    AuditList,
    ClaimIn,
    ClaimOut,
    DecisionIn,
    DecisionResult,
    ReviewerStats,
    StatsOut,
    TaskList,
    TaskOut,
)

router = APIRouter(prefix="/v1", tags=["review"])

TaskId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/review/queue", response_model=TaskList, summary="Waiting tasks in queue order")
def queue(
    key: ReviewerKey,
    services: ServicesDep,
    label: Label | None = None,
    tenant: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    source: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TaskList:
    """Block before review, then higher score, then older. Escalated tasks are listed for admins."""
    query = crud.queue_query(
        label=label,
        tenant=tenant,
        source=source,
        since=since,
        until=until,
        include_escalated=key.role == "admin",
    ).limit(limit)
    with services.db.read() as session:
        return TaskList(tasks=[task_out(t) for t in session.scalars(query).unique()])


@router.post("/review/claim", response_model=ClaimOut, summary="Lease the next task")
def claim(
    key: ReviewerKey, services: ServicesDep, filters: Annotated[ClaimIn | None, Body()] = None
) -> ClaimOut:
    """Lease the first matching task to this reviewer (no other reviewer gets it meanwhile)."""
    filters = filters or ClaimIn()
    with services.db.write() as session:
        task = crud.claim_next(
            session,
            reviewer=key,
            lease_seconds=services.settings.lease_seconds,
            label=filters.label,
            tenant=filters.tenant,
            source=filters.source,
            since=filters.since,
            until=filters.until,
        )
        return ClaimOut(task=task_out(task) if task else None)


@router.get("/review/tasks/{task_id}", response_model=TaskOut, summary="One review task")
def get_task(task_id: TaskId, key: ReviewerKey, services: ServicesDep) -> TaskOut:
    with services.db.read() as session:
        task = session.get(ReviewTask, task_id)
        if task is None:
            raise NotFound(f"no review task with id {task_id}")
        return task_out(task)


@router.post("/review/tasks/{task_id}/release", response_model=TaskOut, summary="Give a task back")
def release(task_id: TaskId, key: ReviewerKey, services: ServicesDep) -> TaskOut:
    with services.db.write() as session:
        return task_out(crud.release_task(session, task_id=task_id, reviewer=key))


@router.post(
    "/review/tasks/{task_id}/decision", response_model=DecisionResult, summary="Decide a claimed task"
)
def decide(
    task_id: TaskId, decision: DecisionIn, key: ReviewerKey, services: ServicesDep
) -> DecisionResult:
    """``confirm``, ``reject`` (false positive) or ``escalate`` for each flagged label, with a note.

    Every flagged label needs an action; a label the model missed may be confirmed too.
    """
    with services.db.write() as session:
        review, task, item = crud.decide(
            session,
            task_id=task_id,
            reviewer=key,
            decisions={label.value: action for label, action in decision.decisions.items()},
            note=decision.note,
        )
        result = DecisionResult(
            review=review_out(review),
            task=task_out(task),
            item_review_status=item.review_status,
            confirmed_labels=item.confirmed_labels,
        )
    services.metrics.reviews.labels(review.outcome).inc()
    return result


@router.get("/review/stats", response_model=StatsOut, summary="Reviewer statistics")
def stats(key: ReviewerKey, services: ServicesDep) -> StatsOut:
    """Per reviewer: reviews, outcomes, disagreements in double review, mean time to decide."""
    with services.db.read() as session:
        reviews = list(session.scalars(select(Review).order_by(Review.task_id, Review.stage)))
        queue_counts = dict(
            session.execute(
                select(ReviewTask.status, func.count()).group_by(ReviewTask.status)
            ).all()
        )
        escalated = session.scalar(
            select(func.count()).where(ReviewTask.escalated.is_(True), ReviewTask.status != "done")
        )
    return StatsOut(reviewers=reviewer_stats(reviews), queue={**queue_counts, "escalated": escalated or 0})


def reviewer_stats(reviews: list[Review]) -> list[ReviewerStats]:
    """Aggregate reviews per reviewer (plain function: the console uses it too)."""
    by_task: dict[int, list[Review]] = {}
    for review in reviews:
        by_task.setdefault(review.task_id, []).append(review)
    disagreements: dict[int, int] = {}
    for task_reviews in by_task.values():
        first_two = [r for r in task_reviews if r.outcome != "escalate"][:2]
        if len(first_two) == 2 and _confirmed(first_two[0]) != _confirmed(first_two[1]):
            for review in first_two:
                disagreements[review.reviewer_id] = disagreements.get(review.reviewer_id, 0) + 1
    rows: dict[int, dict] = {}
    for review in reviews:
        row = rows.setdefault(
            review.reviewer_id,
            {"reviewer": review.reviewer_name, "reviews": 0, "confirm": 0, "reject": 0, "escalate": 0, "seconds": []},
        )
        row["reviews"] += 1
        row[review.outcome] += 1
        if review.claimed_at is not None:
            row["seconds"].append((review.created_at - review.claimed_at).total_seconds())
    return [
        ReviewerStats(
            reviewer_id=reviewer_id,
            reviewer=row["reviewer"],
            reviews=row["reviews"],
            confirmed=row["confirm"],
            rejected=row["reject"],
            escalated=row["escalate"],
            disagreements=disagreements.get(reviewer_id, 0),
            mean_seconds=sum(row["seconds"]) / len(row["seconds"]) if row["seconds"] else None,
        )
        for reviewer_id, row in sorted(rows.items())
    ]


def _confirmed(review: Review) -> list[str]:
    return sorted(label for label, action in review.decisions.items() if action == "confirm")


@router.get("/audit", response_model=AuditList, summary="The audit log (admins)")
def audit_log(
    key: AdminKey,
    services: ServicesDep,
    item_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    actor_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    action: Annotated[str | None, Query(max_length=50, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> AuditList:
    """Newest first; page with ``before_id``."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if item_id is not None:
        query = query.where(AuditEntry.item_id == item_id)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    with services.db.read() as session:
        return AuditList(entries=[audit_out(e) for e in session.scalars(query)])
