"""Stored items, the contacts that link them and their near-duplicate clusters."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from serve.api.deps import CurrentKey, ReviewerKey, ServicesDep, can_see
from serve.api.presenters import audit_out, item_out, item_summary, review_out
from serve.contacts import normalize_value
from serve.db_models import ApiKey, AuditEntry, Cluster, Item, ItemContact, Review
from serve.errors import NotFound
from serve.schemas import (
    MAX_ID,
    NO_NUL,
    AuditList,
    ClusterOut,
    ContactItems,
    ItemList,
    ItemOut,
    ReviewOut,
)
from serve.security import Role

router = APIRouter(prefix="/v1", tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _visible_item(session: Session, key: ApiKey, item_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None or not can_see(key, item.tenant):
        raise NotFound(f"no item with id {item_id}")
    return item


@router.get("/items/{item_id}", response_model=ItemOut, summary="One stored item")
def get_item(item_id: ItemId, key: CurrentKey, services: ServicesDep) -> ItemOut:
    """The stored item with its screening result, contacts and review state."""
    with services.db.read() as session:
        return item_out(_visible_item(session, key, item_id))


@router.get("/items", response_model=ItemList, summary="List stored items, newest first")
def list_items(
    key: CurrentKey,
    services: ServicesDep,
    decision: Literal["pass", "review", "block"] | None = None,
    review_status: Literal["none", "pending", "in_review", "escalated", "confirmed", "rejected"]
    | None = None,
    external_id: Annotated[str | None, Query(max_length=300, pattern=NO_NUL)] = None,
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ItemList:
    """A platform sees its own items; reviewers and admins see all."""
    query = select(Item).order_by(Item.id.desc()).limit(limit).offset(offset)
    if key.role == Role.PLATFORM:
        query = query.where(Item.tenant == key.tenant)
    if decision:
        query = query.where(Item.decision == decision)
    if review_status:
        query = query.where(Item.review_status == review_status)
    if external_id is not None:
        query = query.where(Item.external_id == external_id)
    with services.db.read() as session:
        return ItemList(items=[item_summary(item) for item in session.scalars(query)])


@router.get("/items/{item_id}/reviews", response_model=list[ReviewOut], summary="Reviews of an item")
def item_reviews(item_id: ItemId, key: ReviewerKey, services: ServicesDep) -> list[ReviewOut]:
    with services.db.read() as session:
        _visible_item(session, key, item_id)
        reviews = session.scalars(select(Review).where(Review.item_id == item_id).order_by(Review.id))
        return [review_out(r) for r in reviews]


@router.get("/items/{item_id}/audit", response_model=AuditList, summary="Audit trail of an item")
def item_audit(item_id: ItemId, key: ReviewerKey, services: ServicesDep) -> AuditList:
    """Every recorded action on the item, oldest first."""
    with services.db.read() as session:
        _visible_item(session, key, item_id)
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.item_id == item_id).order_by(AuditEntry.id)
        )
        return AuditList(entries=[audit_out(e) for e in entries])


@router.get(
    "/contacts/{value}/items", response_model=ContactItems, summary="Items sharing a contact handle"
)
def contact_items(
    value: Annotated[str, Path(min_length=1, max_length=100, pattern=NO_NUL)],
    key: CurrentKey,
    services: ServicesDep,
    limit: Limit = 200,
) -> ContactItems:
    """Every item (visible to this key) with this phone number, WeChat/QQ id, ... however written."""
    normalized = normalize_value(value)
    query = (
        select(Item)
        .where(Item.id.in_(select(ItemContact.item_id).where(ItemContact.value == normalized)))
        .order_by(Item.id.desc())
        .limit(limit)
    )
    if key.role == Role.PLATFORM:
        query = query.where(Item.tenant == key.tenant)
    with services.db.read() as session:
        return ContactItems(value=normalized, items=[item_summary(i) for i in session.scalars(query)])


@router.get("/clusters/{cluster_id}", response_model=ClusterOut, summary="A near-duplicate cluster")
def get_cluster(
    cluster_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    key: CurrentKey,
    services: ServicesDep,
    limit: Limit = 200,
) -> ClusterOut:
    """Items in the cluster (visible to this key): the same text re-posted with small changes."""
    query = select(Item).where(Item.cluster_id == cluster_id).order_by(Item.id).limit(limit)
    if key.role == Role.PLATFORM:
        query = query.where(Item.tenant == key.tenant)
    with services.db.read() as session:
        cluster = session.get(Cluster, cluster_id)
        items = list(session.scalars(query))
        if cluster is None or not items:
            raise NotFound(f"no cluster with id {cluster_id}")
        return ClusterOut(id=cluster.id, size=len(items), items=[item_summary(i) for i in items])
