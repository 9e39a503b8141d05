"""Every write to the database goes through this module (keyword-only functions).

Callers hand in a session inside a transaction (`serve.db.transaction`) and the functions
add, change and audit rows in it; nothing here commits, so a failure anywhere in a request
rolls back everything that request did. Every action taken by a person or a platform also
appends an `AuditEntry` in the same transaction: an action and its audit record land
together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, any_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from serve import similarity
from serve.contacts import Contact
from serve.db_models import (
    ApiKey,
    AuditEntry,
    Cluster,
    Item,
    ItemBand,
    ItemContact,
    Job,
    Review,
    ReviewTask,
    TenantTerm,
    utcnow,
)
from serve.errors import Conflict, Forbidden, InvalidInput, NotFound
from serve.security import Role, display_prefix, hash_key, new_key

PRIORITY = {"block": 2, "review": 1}


# -- audit ---------------------------------------------------------------------------------


def audit(
    session: Session,
    *,
    actor: ApiKey | None,
    action: str,
    item_id: int | None = None,
    task_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """Append one audit entry (the log is never updated or deleted)."""
    session.add(
        AuditEntry(
            actor_id=actor.id if actor else None,
            actor=_actor_name(actor),
            action=action,
            item_id=item_id,
            task_id=task_id,
            before=before,
            after=after,
            note=note,
        )
    )


def _actor_name(actor: ApiKey | None) -> str:
    return "system" if actor is None else f"{actor.name} ({actor.role}#{actor.id})"


# -- keys ----------------------------------------------------------------------------------


def create_api_key(
    session: Session,
    *,
    name: str,
    role: Role | str,
    tenant: str | None,
    rate_limit_per_minute: int | None = None,
    actor: ApiKey | None,
    key: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key (a fresh random one unless ``key`` is given); return the row and the key."""
    role = Role(role)
    if role is Role.PLATFORM and not tenant:
        raise InvalidInput("a platform key needs a tenant")
    if role is not Role.PLATFORM and tenant:
        raise InvalidInput(f"{role} keys see every tenant; give no tenant")
    key = key or new_key()
    if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))) is not None:
        raise Conflict("that key already exists")
    row = ApiKey(
        name=name,
        role=role.value,
        tenant=tenant,
        key_prefix=display_prefix(key),
        key_hash=hash_key(key),
        rate_limit_per_minute=rate_limit_per_minute,
    )
    session.add(row)
    session.flush()
    audit(session, actor=actor, action="key.create", after=_key_state(row))
    return row, key


def revoke_api_key(session: Session, *, key_id: int, actor: ApiKey) -> ApiKey:
    """Revoke a key; it stops working on the next request."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key with id {key_id}")
    if row.revoked_at is not None:
        raise Conflict(f"API key {key_id} is already revoked")
    if row.id == actor.id:
        raise Conflict("you cannot revoke the key you are using (that could lock every admin out)")
    before = _key_state(row)
    row.revoked_at = utcnow()
    audit(session, actor=actor, action="key.revoke", before=before, after=_key_state(row))
    return row


def _key_state(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "tenant": row.tenant,
        "revoked": row.revoked_at is not None,
    }


# -- screening -----------------------------------------------------------------------------


@dataclass
class NewItem:
    """A screened post ready to store: the submitted fields plus what the service computed."""

    external_id: str
    text: str
    content_sha256: str
    url: str | None
    source: str | None
    author_id: str | None
    posted_at: datetime | None
    metadata: dict[str, Any] | None
    result: dict[str, Any]  # Screening.to_dict()
    contacts: list[Contact]
    signature: list[int] | None


@dataclass
class StoredItem:
    """A freshly stored item, with the fields responses need (read-only view, no session)."""

    id: int
    tenant: str
    external_id: str
    version: int
    decision: str
    labels: list[str]
    scores: dict[str, float]
    evidence: list[dict[str, Any]]
    contacts: list[Contact]
    cluster_id: int | None
    review_status: str
    content_sha256: str
    created_at: datetime


def find_stored(
    session: Session, *, tenant: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Item]:
    """Stored items by (external_id, content_sha256) among ``keys``."""
    keys = set(keys)
    found: dict[tuple[str, str], Item] = {}
    external_ids = sorted({external_id for external_id, _ in keys})
    if not external_ids:
        return found
    rows = session.scalars(
        select(Item).where(Item.tenant == tenant, _one_of(session, Item.external_id, external_ids))
    )
    for item in rows:
        key = (item.external_id, item.content_sha256)
        if key in keys:
            found[key] = item
    return found


def store_items(
    session: Session,
    *,
    tenant: str,
    submitter: ApiKey,
    new_items: Sequence[NewItem],
    model_version: str,
    double_review_block: bool,
    cluster_min_similarity: float,
) -> tuple[dict[tuple[str, str], Item | StoredItem], set[tuple[str, str]]]:
    """Store screened posts as new item versions, with contacts, clusters and review tasks.

    Items whose (external_id, text) is already stored are not stored again. Returns every
    requested key with its item, old (`Item`) or new (`StoredItem`), and the keys stored
    now. Rows are written with bulk Core inserts: a batch of a thousand posts is a handful
    of statements.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Serialise writers of the same posts (SQLite's write lock already does): without it two
        # edits of one post submitted at once would both take the next version number.
        names = sorted({f"{tenant}\x1f{n.external_id}" for n in new_items})
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(x, 0) AS k "
                "FROM unnest(CAST(:names AS text[])) AS x ORDER BY k) AS keys"
            ),
            {"names": names},
        )
    stored: dict[tuple[str, str], Item | StoredItem] = dict(
        find_stored(session, tenant=tenant, keys=((n.external_id, n.content_sha256) for n in new_items))
    )
    fresh: list[NewItem] = []
    created: set[tuple[str, str]] = set()
    for new in new_items:
        key = (new.external_id, new.content_sha256)
        if key not in stored and key not in created:
            created.add(key)
            fresh.append(new)
    if not fresh:
        return stored, created

    now = utcnow()
    versions = _latest_versions(session, tenant=tenant, external_ids={n.external_id for n in fresh})
    clusters = _assign_clusters(session, fresh=fresh, min_similarity=cluster_min_similarity)
    rows = []
    for new, cluster_id in zip(fresh, clusters.item_clusters, strict=True):
        versions[new.external_id] = versions.get(new.external_id, 0) + 1
        result = new.result
        rows.append(
            {
                "tenant": tenant,
                "external_id": new.external_id,
                "version": versions[new.external_id],
                "text": new.text,
                "content_sha256": new.content_sha256,
                "url": new.url,
                "source": new.source,
                "author_id": new.author_id,
                "posted_at": new.posted_at,
                "metadata": new.metadata,
                "decision": result["decision"],
                "labels": result["labels"],
                "scores": result["scores"],
                "evidence": result["evidence"],
                "model_version": model_version,
                "minhash": new.signature,
                "cluster_id": cluster_id if isinstance(cluster_id, int) else None,
                "review_status": "pending" if result["decision"] in PRIORITY else "none",
                "submitted_by": submitter.id,
                "created_at": now,
            }
        )
    # Plain executemany, then read the ids back by the unique key: RETURNING with guaranteed
    # order makes SQLite insert row by row, 20x slower for a batch.
    _bulk_insert(session, Item, rows)
    id_of: dict[tuple[str, str], int] = {}
    id_of.update(
        ((external_id, sha), item_id)
        for item_id, external_id, sha in session.execute(
            select(Item.id, Item.external_id, Item.content_sha256).where(
                Item.tenant == tenant, _one_of(session, Item.external_id, {n.external_id for n in fresh})
            )
        )
    )
    ids = [id_of[(n.external_id, n.content_sha256)] for n in fresh]
    contact_rows = [
        {"item_id": item_id, **contact.to_dict()}
        for item_id, new in zip(ids, fresh, strict=True)
        for contact in new.contacts
    ]
    if contact_rows:
        _bulk_insert(session, ItemContact, contact_rows)
    cluster_ids = clusters.write(session, ids)

    flagged = [(item_id, row) for item_id, row in zip(ids, rows, strict=True) if row["decision"] in PRIORITY]
    if flagged:
        _bulk_insert(
            session,
            ReviewTask,
            [_task_row(item_id, row, double_review_block=double_review_block) for item_id, row in flagged],
        )
        task_of = {
            item_id: task_id
            for task_id, item_id in session.execute(
                select(ReviewTask.id, ReviewTask.item_id).where(
                    _one_of(session, ReviewTask.item_id, [item_id for item_id, _ in flagged])
                )
            )
        }
        _bulk_insert(
            session,
            AuditEntry,
            [
                {
                    "at": now,
                    "actor_id": submitter.id,
                    "actor": _actor_name(submitter),
                    "action": "item.queue",
                    "item_id": item_id,
                    "task_id": task_of[item_id],
                    "after": {"decision": row["decision"], "labels": row["labels"]},
                }
                for item_id, row in flagged
            ],
        )
    for item_id, new, row, cluster_id in zip(ids, fresh, rows, cluster_ids, strict=True):
        stored[(new.external_id, new.content_sha256)] = StoredItem(
            id=item_id,
            tenant=tenant,
            external_id=new.external_id,
            version=row["version"],
            decision=row["decision"],
            labels=row["labels"],
            scores=row["scores"],
            evidence=row["evidence"],
            contacts=new.contacts,
            cluster_id=cluster_id,
            review_status=row["review_status"],
            content_sha256=new.content_sha256,
            created_at=now,
        )
    return stored, created


def _latest_versions(session: Session, *, tenant: str, external_ids: set[str]) -> dict[str, int]:
    rows = session.execute(
        select(Item.external_id, func.max(Item.version))
        .where(Item.tenant == tenant, _one_of(session, Item.external_id, external_ids))
        .group_by(Item.external_id)
    )
    return {external_id: version for external_id, version in rows}


def _task_row(item_id: int, row: dict[str, Any], *, double_review_block: bool) -> dict[str, Any]:
    flagged_scores = [row["scores"].get(label, 0.0) for label in row["labels"]] or [0.0]
    return {
        "item_id": item_id,
        "tenant": row["tenant"],
        "source": row["source"],
        "priority": PRIORITY[row["decision"]],
        "max_score": max(flagged_scores),
        "labels_key": "," + ",".join(row["labels"]) + ",",
        "status": "open",
        "escalated": False,
        "required_reviews": 2 if row["decision"] == "block" and double_review_block else 1,
        "reviews_done": 0,
        "reviewed_by": [],
        "created_at": row["created_at"],
    }


# Per band, only the most recent owners are compared: a campaign of thousands of copies is
# found through any of them, and the work per new item stays bounded.
OWNERS_PER_BAND = 8
# Only items that matched nothing are indexed: an item that joins a cluster is found through
# the member it matched. The band table then grows with distinct texts, not with re-posts.


@dataclass
class _ClusterPlan:
    """Where each new item goes. A cluster's id is the id of its first item, so a new cluster
    is named by its seed: ``("stored", item_id)`` or ``("batch", index in this batch)``."""

    item_clusters: list[int | tuple[str, int] | None]
    existing_joins: dict[int, tuple[str, int]]
    growth: dict[int | tuple[str, int], int]
    bands: list[list[int] | None]

    def write(self, session: Session, item_ids: list[int]) -> list[int | None]:
        """Create the new clusters, write memberships and bands (after the items exist), and
        return the cluster id of each new item."""

        def resolve(cluster: int | tuple[str, int] | None) -> int | None:
            if isinstance(cluster, tuple):
                kind, seed = cluster
                return seed if kind == "stored" else item_ids[seed]
            return cluster

        new_clusters = [c for c in self.growth if isinstance(c, tuple)]
        if new_clusters:
            now = utcnow()
            _bulk_insert(
                session,
                Cluster,
                [{"id": resolve(c), "size": self.growth[c], "created_at": now} for c in new_clusters],
            )
            members = [
                {"item_id": item_id, "cluster": resolve(c)}
                for item_id, c in zip(item_ids, self.item_clusters, strict=True)
                if isinstance(c, tuple)
            ]
            members += [{"item_id": item_id, "cluster": resolve(c)} for item_id, c in self.existing_joins.items()]
            table = Item.__table__
            session.execute(
                update(table).where(table.c.id == bindparam("item_id")).values(cluster_id=bindparam("cluster")),
                members,
            )
        existing_growth = [{"cid": c, "added": n} for c, n in self.growth.items() if isinstance(c, int)]
        if existing_growth:
            table = Cluster.__table__
            session.execute(
                update(table).where(table.c.id == bindparam("cid")).values(size=table.c.size + bindparam("added")),
                existing_growth,
            )
        band_rows = [
            {"item_id": item_id, "band": band, "hash": key}
            for item_id, keys in zip(item_ids, self.bands, strict=True)
            if keys
            for band, key in enumerate(keys)
        ]
        if band_rows:
            _bulk_insert(session, ItemBand, band_rows)
        return [resolve(c) for c in self.item_clusters]


def _assign_clusters(session: Session, *, fresh: list[NewItem], min_similarity: float) -> _ClusterPlan:
    """Match each new item to its most similar earlier item (stored or earlier in the batch)."""
    keys_per_item = [similarity.band_keys(n.signature) if n.signature else None for n in fresh]
    all_keys = sorted({key for keys in keys_per_item if keys for key in keys})
    owners: dict[int, list[int]] = {}
    if all_keys:
        ranked = (
            select(
                ItemBand.item_id,
                ItemBand.hash,
                func.row_number().over(partition_by=ItemBand.hash, order_by=ItemBand.item_id.desc()).label("rank"),
            )
            .where(_one_of(session, ItemBand.hash, all_keys))
            .subquery()
        )
        for item_id, key in session.execute(
            select(ranked.c.item_id, ranked.c.hash).where(ranked.c.rank <= OWNERS_PER_BAND)
        ):
            owners.setdefault(key, []).append(item_id)
    candidate_ids = sorted({item_id for ids in owners.values() for item_id in ids})
    # Candidates are addressed by position: stored items first, then this batch's items.
    signatures: list[list[int]] = []
    cluster_of: list[int | tuple[str, int] | None] = []
    stored_ids: list[int] = []
    stored_position: dict[int, int] = {}
    if candidate_ids:
        for row in session.execute(
            select(Item.id, Item.minhash, Item.cluster_id).where(_one_of(session, Item.id, candidate_ids))
        ):
            stored_position[row.id] = len(signatures)
            stored_ids.append(row.id)
            signatures.append(row.minhash)
            cluster_of.append(row.cluster_id)
    band_positions: dict[int, list[int]] = {
        key: [stored_position[i] for i in ids if i in stored_position] for key, ids in owners.items()
    }
    matrix = np.array(signatures, dtype=np.int64).reshape(-1, similarity.NUM_HASHES)
    stored_count = len(signatures)
    batch_signatures: list[list[int]] = []

    plan = _ClusterPlan(item_clusters=[], existing_joins={}, growth={}, bands=[])
    for new, keys in zip(fresh, keys_per_item, strict=True):
        if not keys:
            plan.item_clusters.append(None)
            plan.bands.append(None)
            continue
        positions = sorted({p for key in keys for p in band_positions.get(key, ())[-OWNERS_PER_BAND:]})
        best, best_score = None, min_similarity
        if positions:
            rows = np.array(
                [matrix[p] if p < stored_count else batch_signatures[p - stored_count] for p in positions],
                dtype=np.int64,
            )
            scores = (rows == np.array(new.signature, dtype=np.int64)).mean(axis=1)
            index = int(scores.argmax())
            if scores[index] >= best_score:
                best, best_score = positions[index], float(scores[index])
        cluster: int | tuple[str, int] | None = None
        if best is not None:
            cluster = cluster_of[best]
            if cluster is None:
                if best < stored_count:
                    cluster = ("stored", stored_ids[best])
                    plan.existing_joins[stored_ids[best]] = cluster
                else:
                    cluster = ("batch", best - stored_count)
                    plan.item_clusters[best - stored_count] = cluster
                cluster_of[best] = cluster
                plan.growth[cluster] = 1
            plan.growth[cluster] = plan.growth.get(cluster, 0) + 1
        position = stored_count + len(batch_signatures)
        batch_signatures.append(new.signature)
        cluster_of.append(cluster)
        plan.item_clusters.append(cluster)
        indexed = best is None
        plan.bands.append(keys if indexed else None)
        if indexed:
            for key in keys:
                band_positions.setdefault(key, []).append(position)
    return plan




def _bulk_insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows. On PostgreSQL the plain-valued tables (bands, contacts) go through
    COPY: psycopg's executemany costs a round of parsing per row, ten thousand rows a batch."""
    table = model.__table__
    if model in (ItemBand, ItemContact) and session.get_bind().dialect.name == "postgresql":
        columns = list(rows[0])
        cursor = session.connection().connection.driver_connection.cursor()
        names = ", ".join(f'"{column}"' for column in columns)
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
        return
    session.execute(insert(table), rows)


def _one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN values`` with the values in one bound parameter (a JSON list on SQLite, an
    array on PostgreSQL): thousands of separate IN parameters cost more to compile than to run."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    rows = func.json_each(bindparam(None, json.dumps(values))).table_valued("value")
    return column.in_(select(rows.c.value))


# -- review --------------------------------------------------------------------------------


def queue_query(
    *,
    label: str | None = None,
    tenant: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_escalated: bool = False,
    now: datetime | None = None,
) -> Select[tuple[ReviewTask]]:
    """Open tasks (and expired leases) in queue order: block first, then score, then age."""
    now = now or utcnow()
    query = select(ReviewTask).where(
        or_(
            ReviewTask.status == "open",
            (ReviewTask.status == "claimed") & (ReviewTask.lease_expires_at < now),
        )
    )
    if not include_escalated:
        query = query.where(ReviewTask.escalated.is_(False))
    if label:
        query = query.where(ReviewTask.labels_key.like(f"%,{label},%"))
    if tenant:
        query = query.where(ReviewTask.tenant == tenant)
    if source:
        query = query.where(ReviewTask.source == source)
    if since:
        query = query.where(ReviewTask.created_at >= since)
    if until:
        query = query.where(ReviewTask.created_at < until)
    return query.order_by(
        ReviewTask.escalated.desc(),
        ReviewTask.priority.desc(),
        ReviewTask.max_score.desc(),
        ReviewTask.created_at.asc(),
        ReviewTask.id.asc(),
    )


def claim_next(
    session: Session,
    *,
    reviewer: ApiKey,
    lease_seconds: int,
    label: str | None = None,
    tenant: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ReviewTask | None:
    """Lease the first task in queue order that this reviewer may take; None when there is none.

    On PostgreSQL the candidate rows are locked with ``FOR UPDATE SKIP LOCKED``, so two
    reviewers claiming at once are handed different tasks without waiting on each other. On
    SQLite the transaction holds the write lock from its start (``BEGIN IMMEDIATE``). In both
    cases the final compare-and-set update only succeeds on a task that is still claimable.
    """
    now = utcnow()
    query = queue_query(
        label=label,
        tenant=tenant,
        source=source,
        since=since,
        until=until,
        include_escalated=reviewer.role == Role.ADMIN,
        now=now,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=ReviewTask)
    offset = 0
    while True:
        batch = list(session.scalars(query.limit(20).offset(offset)).unique())
        if not batch:
            return None
        for task in batch:
            # A double review needs a second, different reviewer.
            if reviewer.id in (task.reviewed_by or []):
                continue
            if _claim_if_free(session, task, reviewer, now=now, lease_seconds=lease_seconds):
                session.refresh(task)
                audit(
                    session,
                    actor=reviewer,
                    action="task.claim",
                    item_id=task.item_id,
                    task_id=task.id,
                    after={"lease_expires_at": task.lease_expires_at.isoformat()},
                )
                return task
        offset += len(batch)


def release_task(session: Session, *, task_id: int, reviewer: ApiKey) -> ReviewTask:
    """Give a claimed task back to the queue."""
    task = _locked_task(session, task_id)
    if task.status != "claimed" or task.claimed_by != reviewer.id:
        raise Conflict(f"task {task_id} is not claimed by you")
    task.status, task.claimed_by, task.lease_expires_at = "open", None, None
    audit(session, actor=reviewer, action="task.release", item_id=task.item_id, task_id=task.id)
    return task


def _locked_task(session: Session, task_id: int) -> ReviewTask:
    task = session.get(ReviewTask, task_id, with_for_update=True, populate_existing=True)
    if task is None:
        raise NotFound(f"no review task with id {task_id}")
    return task


def decide(
    session: Session,
    *,
    task_id: int,
    reviewer: ApiKey,
    decisions: dict[str, str],
    note: str | None,
) -> tuple[Review, ReviewTask, Item]:
    """Record a reviewer's decision on a task they hold and move the task on.

    One review settles a task unless it needs two (block-level items under double review):
    then the first review sends it back to the queue for a different reviewer, and the
    second settles it when both agree on the confirmed labels, or escalates it to an admin
    when they do not. An ``escalate`` action on any label escalates at once; an admin's
    decision on an escalated task is final.
    """
    task = _locked_task(session, task_id)
    item = task.item
    if task.status == "done":
        raise Conflict(f"task {task_id} is already decided")
    if task.status != "claimed" or task.claimed_by != reviewer.id:
        raise Conflict(f"task {task_id} is not claimed by you; claim it before deciding")
    missing = [label for label in item.labels if label not in decisions]
    if missing:
        raise InvalidInput(f"no decision for flagged label(s): {', '.join(missing)}")
    if task.escalated and reviewer.role != Role.ADMIN:
        raise Forbidden(f"task {task_id} is escalated: only an admin can decide it")

    confirmed = sorted(label for label, action in decisions.items() if action == "confirm")
    escalate = any(action == "escalate" for action in decisions.values())
    if escalate and task.escalated:
        raise InvalidInput("an escalated task needs a final confirm or reject for every label")
    outcome = "escalate" if escalate else ("confirm" if confirmed else "reject")
    before = _task_state(task, item)
    now = utcnow()
    review = Review(
        task_id=task.id,
        item_id=item.id,
        reviewer_id=reviewer.id,
        reviewer_name=reviewer.name,
        stage=task.reviews_done + 1,
        decisions=dict(decisions),
        outcome=outcome,
        note=note,
        claimed_at=task.claimed_at,
        created_at=now,
    )
    session.add(review)
    task.reviews_done += 1
    task.reviewed_by = [*(task.reviewed_by or []), reviewer.id]
    audit_note = note

    if escalate:
        _escalate(task, item)
    elif task.escalated or task.reviews_done >= task.required_reviews:
        earlier = _earlier_confirmed(session, task) if not task.escalated else None
        if earlier is not None and earlier != confirmed:
            _escalate(task, item)
            audit_note = f"reviewers disagree: {earlier} vs {confirmed}" + (f"; {note}" if note else "")
        else:
            task.status, task.closed_at = "done", now
            task.claimed_by, task.lease_expires_at = None, None
            item.review_status = "confirmed" if confirmed else "rejected"
            item.confirmed_labels = confirmed
            item.reviewed_at = now
    else:
        task.status, task.claimed_by, task.lease_expires_at = "open", None, None
        item.review_status = "in_review"
    session.flush()
    audit(
        session,
        actor=reviewer,
        action="task.decide",
        item_id=item.id,
        task_id=task.id,
        before=before,
        after={**_task_state(task, item), "decisions": dict(decisions), "outcome": outcome},
        note=audit_note,
    )
    return review, task, item


def _escalate(task: ReviewTask, item: Item) -> None:
    task.escalated = True
    task.status, task.claimed_by, task.lease_expires_at = "open", None, None
    item.review_status = "escalated"


def _earlier_confirmed(session: Session, task: ReviewTask) -> list[str] | None:
    """Confirmed labels of the previous review of a double-reviewed task, else None."""
    if task.required_reviews < 2:
        return None
    previous = session.scalars(
        select(Review)
        .where(Review.task_id == task.id, Review.stage == task.reviews_done - 1)
        .order_by(Review.id.desc())
    ).first()
    if previous is None:
        return None
    return sorted(label for label, action in previous.decisions.items() if action == "confirm")


def _task_state(task: ReviewTask, item: Item) -> dict[str, Any]:
    return {
        "status": task.status,
        "escalated": task.escalated,
        "reviews_done": task.reviews_done,
        "review_status": item.review_status,
        "confirmed_labels": item.confirmed_labels,
    }


# -- tenant lexicons -----------------------------------------------------------------------


def add_term(
    session: Session, *, tenant: str, kind: str, label: str | None, term: str, actor: ApiKey
) -> TenantTerm:
    """Add a tenant lexicon term; it applies from the next screening request on."""
    if kind == "block" and not label:
        raise InvalidInput("a block term needs a label")
    if kind == "allow" and label:
        raise InvalidInput("an allow term applies to every label; give no label")
    exists = session.scalar(
        select(TenantTerm.id).where(
            TenantTerm.tenant == tenant,
            TenantTerm.kind == kind,
            TenantTerm.label == (label or ""),
            TenantTerm.term == term,
        )
    )
    if exists is not None:
        raise Conflict(f"tenant {tenant!r} already has that {kind} term")
    row = TenantTerm(tenant=tenant, kind=kind, label=label or "", term=term, created_by=actor.id)
    session.add(row)
    session.flush()
    audit(
        session,
        actor=actor,
        action="lexicon.add",
        after={"id": row.id, "tenant": tenant, "kind": kind, "label": label, "term": term},
    )
    return row


def delete_term(session: Session, *, tenant: str, term_id: int, actor: ApiKey) -> None:
    """Remove a tenant lexicon term."""
    row = session.get(TenantTerm, term_id)
    if row is None or row.tenant != tenant:
        raise NotFound(f"tenant {tenant!r} has no lexicon term with id {term_id}")
    audit(
        session,
        actor=actor,
        action="lexicon.delete",
        before={"id": row.id, "tenant": tenant, "kind": row.kind, "label": row.label, "term": row.term},
    )
    session.delete(row)


# -- asynchronous jobs ---------------------------------------------------------------------


def create_job(
    session: Session,
    *,
    job_id: str,
    submitter: ApiKey,
    payload: list[dict[str, Any]],
    callback_url: str,
) -> Job:
    """Queue a batch for asynchronous screening and delivery to ``callback_url``."""
    assert submitter.tenant is not None
    job = Job(
        id=job_id,
        tenant=submitter.tenant,
        api_key_id=submitter.id,
        status="queued",
        payload=payload,
        callback_url=callback_url,
        attempts=0,
    )
    session.add(job)
    session.flush()
    audit(session, actor=submitter, action="job.create", after={"job": job_id, "items": len(payload)})
    return job


def lease_due_job(session: Session, *, lease_seconds: float) -> Job | None:
    """Take the next job that is due (queued or waiting to retry its callback), if any."""
    now = utcnow()
    query = (
        select(Job)
        .where(
            Job.status.in_(("queued", "delivering")),
            Job.next_attempt_at <= now,
            or_(Job.locked_until.is_(None), Job.locked_until < now),
        )
        .order_by(Job.next_attempt_at)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job = session.scalars(query).first()
    if job is None:
        return None
    job.locked_until = now + timedelta(seconds=lease_seconds)
    return job


def finish_job_attempt(
    session: Session,
    *,
    job_id: str,
    result: list[dict[str, Any]] | None,
    error: str | None,
    max_attempts: int,
    backoff_seconds: float,
) -> Job:
    """Record a delivery attempt: delivered, retried later with back-off, or failed for good."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    now = utcnow()
    if result is not None:
        job.result = result
    job.attempts += 1
    job.locked_until = None
    job.updated_at = now
    if error is None:
        job.status, job.last_error = "delivered", None
    elif job.attempts >= max_attempts:
        job.status, job.last_error = "failed", error
    else:
        job.status, job.last_error = "delivering", error
        job.next_attempt_at = now + timedelta(seconds=backoff_seconds * 2 ** (job.attempts - 1))
    audit(
        session,
        actor=None,
        action="job.callback",
        after={"job": job.id, "status": job.status, "attempts": job.attempts, "error": error},
    )
    return job


def claim_task(session: Session, *, task_id: int, reviewer: ApiKey, lease_seconds: int) -> ReviewTask:
    """Lease one given task (the console's "claim this"), if it is free and this reviewer may take it."""
    task = _locked_task(session, task_id)
    now = utcnow()
    free = task.status == "open" or (
        task.status == "claimed" and task.lease_expires_at is not None and task.lease_expires_at < now
    )
    if not free:
        raise Conflict(f"task {task_id} is {task.status}, not open")
    if task.escalated and reviewer.role != Role.ADMIN:
        raise Forbidden(f"task {task_id} is escalated: only an admin can take it")
    if reviewer.id in (task.reviewed_by or []):
        raise Conflict(f"you already reviewed task {task_id}; a second review needs another reviewer")
    if not _claim_if_free(session, task, reviewer, now=now, lease_seconds=lease_seconds):
        raise Conflict(f"task {task_id} was just claimed by someone else")
    session.refresh(task)
    audit(
        session,
        actor=reviewer,
        action="task.claim",
        item_id=task.item_id,
        task_id=task.id,
        after={"lease_expires_at": task.lease_expires_at.isoformat()},
    )
    return task


def _claim_if_free(
    session: Session, task: ReviewTask, reviewer: ApiKey, *, now: datetime, lease_seconds: int
) -> bool:
    """Lease ``task`` to ``reviewer`` unless someone holds a live lease; one atomic UPDATE."""
    claimed = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task.id,
            or_(
                ReviewTask.status == "open",
                (ReviewTask.status == "claimed") & (ReviewTask.lease_expires_at < now),
            ),
        )
        .values(
            status="claimed",
            claimed_by=reviewer.id,
            claimed_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1
