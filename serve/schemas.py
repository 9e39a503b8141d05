"""Request and response bodies of the API (pydantic). Unknown fields are refused everywhere.

Strings are checked for what a database cannot store: lone surrogates (invalid UTF-8 that
JSON escapes can smuggle in) and NUL characters. Limits that are configurable (text length,
batch size) are checked by the routes against the settings, not here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from models.labels import Label
from serve.security import Role

Decision = Literal["pass", "review", "block"]
Action = Literal["confirm", "reject", "escalate"]
MAX_METADATA_DEPTH = 8


def _check_string(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8 (contains a lone surrogate)") from None
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        _check_string(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ValueError("integers must fit in 64 bits")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


CleanStr = Annotated[str, AfterValidator(_check_string)]
Text = Annotated[str, AfterValidator(_check_string), AfterValidator(_not_blank)]


class StrictModel(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class ScreenItemIn(StrictModel):
    """One post to screen."""

    external_id: Annotated[Text, Field(max_length=300, description="The platform's id of the post.")]
    text: Annotated[Text, Field(description="The post text (limit: settings.max_text_chars).")]
    url: Annotated[CleanStr | None, Field(max_length=2000)] = None
    source: Annotated[CleanStr | None, Field(max_length=200)] = None
    author_id: Annotated[CleanStr | None, Field(max_length=200)] = None
    posted_at: datetime | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("posted_at")
    @classmethod
    def _posted_at_utc(cls, value: datetime | None) -> datetime | None:
        value = _utc(value)
        if value is not None and not 1970 <= value.year <= 9998:
            raise ValueError("must be a date between 1970 and 9998")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_json(value)
        return value


class ScreenBatchIn(StrictModel):
    """A batch of posts. With ``callback_url`` the batch is screened asynchronously."""

    items: Annotated[list[ScreenItemIn], Field(min_length=1)]
    callback_url: Annotated[CleanStr | None, Field(max_length=2000)] = None

    @field_validator("callback_url")
    @classmethod
    def _callback_is_http(cls, value: str | None) -> str | None:
        return _http_url(value)


class EvidenceOut(BaseModel):
    label: str
    start: int
    end: int
    text: str
    source: str


class ContactOut(BaseModel):
    kind: str
    value: str
    raw: str
    start: int
    end: int


class ScreenResult(BaseModel):
    """The stored result for one submitted post."""

    id: int = Field(description="The stored item id (GET /v1/items/{id}).")
    external_id: str
    version: int
    created: bool = Field(description="False when this exact text was already stored.")
    decision: Decision
    labels: list[str]
    scores: dict[str, float]
    evidence: list[EvidenceOut]
    contacts: list[ContactOut]
    cluster_id: int | None
    review_status: str
    content_sha256: str
    created_at: datetime


class ScreenBatchResult(BaseModel):
    items: list[ScreenResult]


class JobOut(BaseModel):
    """An asynchronous screening job and the state of its callback."""

    id: str
    status: Literal["queued", "delivering", "delivered", "failed"]
    items: int
    attempts: int
    callback_url: str
    last_error: str | None
    result: list[ScreenResult] | None
    created_at: datetime


class ItemOut(ScreenResult):
    tenant: str
    text: str
    url: str | None
    source: str | None
    author_id: str | None
    posted_at: datetime | None
    metadata: dict[str, Any] | None
    model_version: str
    confirmed_labels: list[str] | None
    reviewed_at: datetime | None


class ItemSummary(BaseModel):
    id: int
    tenant: str
    external_id: str
    version: int
    decision: Decision
    labels: list[str]
    review_status: str
    text: str
    created_at: datetime


class ItemList(BaseModel):
    items: list[ItemSummary]


class TaskOut(BaseModel):
    id: int
    item_id: int
    tenant: str
    source: str | None
    priority: Literal["block", "review"]
    max_score: float
    labels: list[str]
    status: Literal["open", "claimed", "escalated", "done"]
    claimed_by: int | None
    lease_expires_at: datetime | None
    required_reviews: int
    reviews_done: int
    created_at: datetime
    text: str


class TaskList(BaseModel):
    tasks: list[TaskOut]


class ClaimIn(StrictModel):
    """Filters for the next task to claim (all optional)."""

    label: Label | None = None
    tenant: Annotated[CleanStr | None, Field(max_length=100)] = None
    source: Annotated[CleanStr | None, Field(max_length=200)] = None
    since: datetime | None = None
    until: datetime | None = None


class DecisionIn(StrictModel):
    """A reviewer's decision: an action for each flagged label (others may be added), and a note."""

    decisions: Annotated[dict[Label, Action], Field(min_length=1)]
    note: Annotated[CleanStr | None, Field(max_length=5000)] = None


class ReviewOut(BaseModel):
    id: int
    task_id: int
    item_id: int
    reviewer_id: int
    reviewer: str
    stage: int
    decisions: dict[str, str]
    outcome: str
    note: str | None
    created_at: datetime


class DecisionResult(BaseModel):
    review: ReviewOut
    task: TaskOut
    item_review_status: str
    confirmed_labels: list[str] | None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    item_id: int | None
    task_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None


class AuditList(BaseModel):
    entries: list[AuditOut]


class ReviewerStats(BaseModel):
    reviewer_id: int
    reviewer: str
    reviews: int
    confirmed: int
    rejected: int
    escalated: int
    disagreements: int = Field(description="Double reviews where the other reviewer decided differently.")
    mean_seconds: float | None = Field(description="Mean time from claim to decision.")


class StatsOut(BaseModel):
    reviewers: list[ReviewerStats]
    queue: dict[str, int]


class KeyCreate(StrictModel):
    name: Annotated[Text, Field(max_length=200)]
    role: Role
    tenant: Annotated[CleanStr | None, Field(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] = None
    rate_limit_per_minute: Annotated[int | None, Field(ge=1, le=1_000_000)] = None


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    tenant: str | None
    prefix: str
    rate_limit_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself, shown only in this response.")


class KeyList(BaseModel):
    keys: list[KeyOut]


class TermCreate(StrictModel):
    """A tenant lexicon term. ``block`` terms need a label; ``allow`` terms suppress matches."""

    kind: Literal["block", "allow"]
    term: Annotated[Text, Field(max_length=200)]
    label: Label | None = None


class TermOut(BaseModel):
    id: int
    tenant: str
    kind: str
    label: str | None
    term: str
    created_at: datetime


class TermList(BaseModel):
    terms: list[TermOut]


class CallbackSecret(BaseModel):
    tenant: str
    secret: str


class ClusterOut(BaseModel):
    id: int
    size: int
    items: list[ItemSummary]


class ContactItems(BaseModel):
    value: str
    items: list[ItemSummary]


class ClaimOut(BaseModel):
    """The claimed task, or null when nothing matching is waiting."""

    task: TaskOut | None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)

NO_NUL = r"^[^\x00]*$"
"""Pattern for free-text query and path parameters: PostgreSQL cannot compare NUL characters."""

MAX_ID = 2**31 - 1
"""Largest row id (ids are 32-bit INTEGER columns): bigger ids in paths are refused with 422."""
