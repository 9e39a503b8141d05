"""Screening requests: look up what is stored, score the rest, store it all in one transaction.

The scorer runs outside any database transaction (it is the slow part), so a long batch
never holds a lock. Scoring happens in the calling thread: routes are plain ``def``
functions, which FastAPI runs in its thread pool, so the event loop stays free.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.labels import Label
from serve import crud, similarity
from serve.config import Settings
from serve.contacts import extract_contacts
from serve.db import Database
from serve.db_models import ApiKey, Item, TenantTerm
from serve.errors import Conflict, Forbidden, InvalidInput, PayloadTooLarge
from serve.metrics import Metrics
from serve.schemas import ScreenItemIn


class LexiconLike(Protocol):
    """What the service needs of `models.lexicon.Lexicon`."""

    def with_terms(self, block: Any = None, allow: Any = ()) -> Any: ...


class ScreenerLike(Protocol):
    """What the service needs of `models.scorer.Screener` (tests may hand in a fake)."""

    lexicon: Any

    @property
    def info(self) -> dict[str, Any]: ...

    def screen(self, texts: Sequence[str], *, lexicon: Any = None) -> list[Any]: ...


def content_sha256(text: str) -> str:
    """SHA-256 of the exact submitted text (UTF-8): the identity of an item version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_version(screener: ScreenerLike) -> str:
    """A short description of the loaded artifact, stored with every result."""
    info = screener.info
    parts = [str(info.get(key)) for key in ("name", "kind", "version") if info.get(key)]
    return ":".join(parts)[:200] or "unknown"


# Built once: asked on every screening request.
_TERMS_FINGERPRINT = select(func.count(TenantTerm.id), func.max(TenantTerm.id)).where(
    TenantTerm.tenant == bindparam("tenant")
)


class TenantLexicons:
    """Per-tenant lexicons (default terms plus the tenant's own), rebuilt when the terms change.

    Each request asks the database for the tenant's (term count, highest term id); ids are
    never reused, so any change gives a new pair and a rebuilt lexicon on the next request,
    in every worker process, without a restart.
    """

    def __init__(self, base: LexiconLike) -> None:
        self.base = base
        self._cache: dict[str, tuple[tuple[int, int], Any]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, tenant: str) -> Any | None:
        """The tenant's lexicon, or None when it has no terms of its own (use the default)."""
        count, max_id = session.execute(_TERMS_FINGERPRINT, {"tenant": tenant}).one()
        if not count:
            return None
        fingerprint = (count, max_id)
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        terms = session.scalars(select(TenantTerm).where(TenantTerm.tenant == tenant)).all()
        lexicon = self.build(
            block=[(t.label, t.term) for t in terms if t.kind == "block"],
            allow=[t.term for t in terms if t.kind == "allow"],
        )
        with self._lock:
            self._cache[tenant] = (fingerprint, lexicon)
        return lexicon

    def build(self, *, block: list[tuple[str, str]], allow: list[str]) -> Any:
        """The default lexicon plus these terms; `InvalidInput` names a term it cannot use."""
        by_label: dict[Label, list[str]] = {}
        for label, term in block:
            by_label.setdefault(Label(label), []).append(term)
        try:
            return self.base.with_terms(block=by_label, allow=allow)
        except ValueError as error:
            raise InvalidInput(str(error)) from None


def _result_dict(result: Any) -> dict[str, Any]:
    """`Screening.to_dict()` without `dataclasses.asdict`, whose deep copies cost more than
    the rest of storing a batch (the fields are the contract's ``Evidence`` fields)."""
    return {
        "decision": result.decision,
        "labels": list(result.labels),
        "scores": dict(result.scores),
        "evidence": [
            {"label": e.label, "start": e.start, "end": e.end, "text": e.text, "source": e.source}
            for e in result.evidence
        ],
    }


@dataclass
class Outcome:
    """One requested post's stored item, and whether this request created it."""

    item: Item | crud.StoredItem
    created: bool


class ScreeningService:
    """Screens and stores posts for a platform key."""

    def __init__(
        self, *, screener: ScreenerLike, db: Database, settings: Settings, metrics: Metrics
    ) -> None:
        self.screener = screener
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.lexicons = TenantLexicons(screener.lexicon)
        self.model_version = model_version(screener)

    def check_limits(self, items: Sequence[ScreenItemIn]) -> None:
        """Refuse batches and texts over the configured limits, naming the offending item."""
        if len(items) > self.settings.max_batch_items:
            raise PayloadTooLarge(
                f"batch of {len(items)} items is over the limit of {self.settings.max_batch_items}"
            )
        for index, item in enumerate(items):
            if len(item.text) > self.settings.max_text_chars:
                raise PayloadTooLarge(
                    f"items[{index}] (external_id {item.external_id!r}): text of {len(item.text)} "
                    f"characters is over the limit of {self.settings.max_text_chars}"
                )

    def screen(self, *, submitter: ApiKey, items: Sequence[ScreenItemIn]) -> list[Outcome]:
        """Screen ``items`` for the submitter's tenant; identical resubmissions return the stored result."""
        if submitter.tenant is None:
            raise Forbidden("only platform keys (which belong to a tenant) submit posts")
        self.check_limits(items)
        tenant = submitter.tenant
        keys = [(item.external_id, content_sha256(item.text)) for item in items]
        with self.db.lookup() as session:
            stored = crud.find_stored(session, tenant=tenant, keys=keys)
            lexicon = self.lexicons.get(session, tenant)

        todo: dict[tuple[str, str], ScreenItemIn] = {}
        for key, item in zip(keys, items, strict=True):
            if key not in stored and key not in todo:
                todo[key] = item
        new_items = self._score(todo, lexicon) if todo else []

        created: set[tuple[str, str]] = set()
        if new_items:
            stored, created = self._store(submitter, new_items)
        outcomes = []
        reported: set[tuple[str, str]] = set()
        for key in keys:
            is_new = key in created and key not in reported
            reported.add(key)
            outcomes.append(Outcome(item=stored[key], created=is_new))
            if is_new:
                self.metrics.record_screening(stored[key].decision, stored[key].labels)
        return outcomes

    def _score(self, todo: dict[tuple[str, str], ScreenItemIn], lexicon: Any) -> list[crud.NewItem]:
        texts = [item.text for item in todo.values()]
        results = self.screener.screen(texts, lexicon=lexicon)
        return [
            crud.NewItem(
                external_id=item.external_id,
                text=item.text,
                content_sha256=sha,
                url=item.url,
                source=item.source,
                author_id=item.author_id,
                posted_at=item.posted_at,
                metadata=item.metadata,
                result=_result_dict(result),
                contacts=extract_contacts(item.text),
                signature=similarity.minhash(item.text),
            )
            for ((_, sha), item), result in zip(todo.items(), results, strict=True)
        ]

    def _store(
        self, submitter: ApiKey, new_items: list[crud.NewItem]
    ) -> tuple[dict[tuple[str, str], Item | crud.StoredItem], set[tuple[str, str]]]:
        assert submitter.tenant is not None
        # A concurrent request may store the same post (or another version of it) first, or
        # merge a cluster this one joins: the unique and foreign key constraints (or the
        # cluster lock) catch that, and a retry then finds the rows as they are now.
        for attempt in range(3):
            try:
                with self.db.write() as session:
                    return crud.store_items(
                        session,
                        tenant=submitter.tenant,
                        submitter=submitter,
                        new_items=new_items,
                        model_version=self.model_version,
                        double_review_block=self.settings.double_review_block,
                        cluster_min_similarity=self.settings.cluster_min_similarity,
                    )
            except (IntegrityError, crud.ConcurrentChange):
                if attempt == 2:
                    raise Conflict("the same posts are being submitted concurrently; retry") from None
        raise AssertionError("unreachable")
