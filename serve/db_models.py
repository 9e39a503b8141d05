"""Database tables (SQLAlchemy 2 typed ORM). Alembic migrations in serve/migrations mirror them.

Times are stored as UTC. JSON columns hold what the scorer returns (scores, evidence) and
review decisions; they are never queried inside, so they stay portable between SQLite and
PostgreSQL. Where the queue filters by label it uses ``ReviewTask.labels_key``, a
``,label,label,`` string that a ``LIKE`` can match on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every timestamp column stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python (SQLite itself keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class ApiKey(Base):
    """An API key. Only its SHA-256 is stored; the key itself is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    tenant: Mapped[str | None] = mapped_column(String(100), index=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Cluster(Base):
    """A group of near-duplicate texts: the same ad re-posted with small changes.

    Its id is the id of the item that founded it (so new clusters need no RETURNING). When a
    new item is similar to members of two clusters they merge into the older (smaller id)
    one, and a ``cluster.merge`` audit entry on that item records it.
    """

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    """One submitted post version and its screening result."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("tenant", "external_id", "content_sha256", name="uq_items_content"),
        UniqueConstraint("tenant", "external_id", "version", name="uq_items_version"),
        Index("ix_items_tenant_created", "tenant", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer, default=1)
    text: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(2000))
    source: Mapped[str | None] = mapped_column(String(200))
    author_id: Mapped[str | None] = mapped_column(String(200))
    posted_at: Mapped[datetime | None] = mapped_column()
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    decision: Mapped[str] = mapped_column(String(10), index=True)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(200))
    minhash: Mapped[list[Any] | None] = mapped_column(JSON)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), index=True)
    review_status: Mapped[str] = mapped_column(String(20), default="none", index=True)
    confirmed_labels: Mapped[list[Any] | None] = mapped_column(JSON)
    reviewed_at: Mapped[datetime | None] = mapped_column()
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contacts: Mapped[list[ItemContact]] = relationship(
        back_populates="item", order_by="ItemContact.start", lazy="selectin"
    )


class ItemContact(Base):
    """A contact handle (phone, WeChat, QQ, ...) found in an item, normalised for lookup."""

    __tablename__ = "item_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(100), index=True)
    raw: Mapped[str] = mapped_column(String(300))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)

    item: Mapped[Item] = relationship(back_populates="contacts")


class ItemBand(Base):
    """One locality-sensitive-hashing band of an item's MinHash: equal bands = candidates."""

    __tablename__ = "item_bands"
    # (hash, item_id): the newest owners of a band are the first entries of the index, read
    # without sorting the others (see `crud._band_owners`).
    __table_args__ = (Index("ix_item_bands_hash_item", "hash", "item_id"),)

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    band: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[int] = mapped_column(BigInteger)


class ReviewTask(Base):
    """An item in the review queue; at most one per item version."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        Index("ix_review_tasks_queue", "status", "priority", "max_score", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), unique=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    source: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer)  # 2 = block, 1 = review
    max_score: Mapped[float] = mapped_column(Float)
    labels_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | claimed | done
    escalated: Mapped[bool] = mapped_column(default=False)  # only admins claim escalated tasks
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    claimed_at: Mapped[datetime | None] = mapped_column()
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    required_reviews: Mapped[int] = mapped_column(Integer, default=1)
    reviews_done: Mapped[int] = mapped_column(Integer, default=0)
    reviewed_by: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()

    item: Mapped[Item] = relationship(lazy="selectin")


class Review(Base):
    """One reviewer's decision on a task: an action per label and a note."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("review_tasks.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    reviewer_name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[int] = mapped_column(Integer)
    decisions: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Append-only record of every action: who, when, what, before and after.

    Database triggers (see the initial migration) refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class TenantTerm(Base):
    """A tenant's own lexicon term: ``block`` terms raise a label, ``allow`` terms suppress hits."""

    __tablename__ = "tenant_terms"
    __table_args__ = (
        UniqueConstraint("tenant", "kind", "label", "term", name="uq_tenant_terms"),
        # Ids are never reused, so (count, max id) changes whenever the terms do (lexicon cache).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    label: Mapped[str] = mapped_column(String(40))  # "" for allow terms
    term: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """An asynchronous screening request and the delivery of its result to a callback URL."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    payload: Mapped[list[Any]] = mapped_column(JSON)
    result: Mapped[list[Any] | None] = mapped_column(JSON)
    callback_url: Mapped[str] = mapped_column(String(2000))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
