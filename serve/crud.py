"""Every write to the database goes through this module (keyword-only functions).

Callers hand in a session inside a transaction (`serve.db.transaction`) and the functions
add, change and audit rows in it; nothing here commits, so a failure anywhere in a request
rolls back everything that request did. Every action taken by a person or a platform also
appends an `AuditEntry` in the same transaction: an action and its audit record land
together or not at all.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Select,
    String,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
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


class ConcurrentChange(Exception):
    """A concurrent writer changed rows this transaction planned from: retry it."""


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


# The statements of every screening request are built once, with named parameters: building
# one (and computing its cache key) costs more Python time than running it on SQLite.
_LOCK_POSTS = text(
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(x, 0) AS k "
    "FROM unnest(CAST(:names AS text[])) AS x ORDER BY k) AS keys"
)


@functools.cache
def _items_of(postgres: bool, *, full: bool) -> Select[Any]:
    """A tenant's items with one of ``:external_ids``: whole rows, or (id, external_id,
    content_sha256, version)."""
    columns = (Item,) if full else (Item.id, Item.external_id, Item.content_sha256, Item.version)
    return select(*columns).where(
        Item.tenant == bindparam("tenant"), _in_param(postgres, Item.external_id, "external_ids")
    )


def find_stored(
    session: Session, *, tenant: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Item]:
    """Stored items by (external_id, content_sha256) among ``keys``."""
    keys = set(keys)
    found: dict[tuple[str, str], Item] = {}
    external_ids = sorted({external_id for external_id, _ in keys})
    if not external_ids:
        return found
    postgres = _is_postgres(session)
    rows = session.scalars(
        _items_of(postgres, full=True),
        {"tenant": tenant, "external_ids": _in_values(postgres, external_ids)},
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
    of statements, and so is a single post (each statement is a round trip to PostgreSQL,
    which is what a single post's latency is made of).
    """
    if _is_postgres(session):
        # Serialise writers of the same posts (SQLite's write lock already does): without it two
        # edits of one post submitted at once would both take the next version number.
        names = sorted({f"{tenant}\x1f{n.external_id}" for n in new_items})
        session.execute(_LOCK_POSTS, {"names": names})
    versions, found = _stored_versions(
        session, tenant=tenant, keys={(n.external_id, n.content_sha256) for n in new_items}
    )
    stored: dict[tuple[str, str], Item | StoredItem] = dict(found)
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
    clusters = _assign_clusters(session, fresh=fresh, min_similarity=cluster_min_similarity)
    clusters.lock(session)
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
    external_ids = {n.external_id for n in fresh}
    id_of = _insert_ids(
        session,
        Item,
        rows,
        key=("external_id", "content_sha256"),
        stored=lambda: (Item.tenant == tenant) & _one_of(session, Item.external_id, external_ids),
    )
    ids = [id_of[(n.external_id, n.content_sha256)] for n in fresh]
    contact_rows = [
        {"item_id": item_id, **contact.to_dict()}
        for item_id, new in zip(ids, fresh, strict=True)
        for contact in new.contacts
    ]
    if contact_rows:
        _bulk_insert(session, ItemContact, contact_rows)
    cluster_ids = clusters.write(session, ids, actor=submitter, now=now)

    flagged = [(item_id, row) for item_id, row in zip(ids, rows, strict=True) if row["decision"] in PRIORITY]
    if flagged:
        task_of = {
            item_id: task_id
            for (item_id,), task_id in _insert_ids(
                session,
                ReviewTask,
                [_task_row(item_id, row, double_review_block=double_review_block) for item_id, row in flagged],
                key=("item_id",),
                stored=lambda: _one_of(session, ReviewTask.item_id, [item_id for item_id, _ in flagged]),
            ).items()
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


# Up to this many rows an INSERT returns the new ids (RETURNING) and saves the round trip
# that reads them back. A larger one would be rendered as one statement with a parameter per
# value (unordered RETURNING; an ordered one makes SQLite insert row by row), which costs
# psycopg more to parse and SQLite more to run than a plain executemany and the read-back.
RETURNING_MAX_ROWS = 50


def _insert_ids(
    session: Session, model: Any, rows: list[dict[str, Any]], *, key: tuple[str, ...], stored: Any
) -> dict[tuple[Any, ...], int]:
    """Insert ``rows`` and return the new id of each by its (unique) ``key`` columns;
    ``stored()`` gives a condition that finds the new rows again."""
    table = model.__table__
    columns = [table.c.id, *(table.c[name] for name in key)]
    if len(rows) <= RETURNING_MAX_ROWS:
        result = session.execute(insert(table).returning(*columns), rows)
    else:
        _bulk_insert(session, model, rows)
        result = session.execute(select(*columns).where(stored()))
    return {tuple(row[1:]): row[0] for row in result}


def _stored_versions(
    session: Session, *, tenant: str, keys: set[tuple[str, str]]
) -> tuple[dict[str, int], dict[tuple[str, str], Item]]:
    """The latest stored version of each external id in ``keys``, and the items already stored
    under one of ``keys`` (a concurrent request may have stored them since the caller looked).
    One narrow query; the full rows are loaded only for keys found, which is rare."""
    versions: dict[str, int] = {}
    found_ids: list[int] = []
    postgres = _is_postgres(session)
    external_ids = sorted({external_id for external_id, _ in keys})
    rows = session.execute(
        _items_of(postgres, full=False),
        {"tenant": tenant, "external_ids": _in_values(postgres, external_ids)},
    )
    for item_id, external_id, sha, version in rows:
        versions[external_id] = max(version, versions.get(external_id, 0))
        if (external_id, sha) in keys:
            found_ids.append(item_id)
    found: dict[tuple[str, str], Item] = {}
    if found_ids:
        for item in session.scalars(select(Item).where(_one_of(session, Item.id, found_ids))):
            found[(item.external_id, item.content_sha256)] = item
    return versions, found


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

# A cluster as the plan knows it: an existing cluster's id, or a cluster to create, named by
# its seed (``("stored", item_id)`` or ``("batch", index in this batch)``).
ClusterRef = int | tuple[str, int]


def _survivor_order(ref: ClusterRef) -> tuple[int, int]:
    """Which cluster survives a merge: an existing cluster before a new one, then the smaller
    id (the older campaign), then a stored seed before one from this batch."""
    if isinstance(ref, int):
        return (0, ref)
    kind, seed = ref
    return (1, seed) if kind == "stored" else (2, seed)


@dataclass
class _ClusterPlan:
    """Where each new item goes, which stored items found no cluster before and join one now,
    and which clusters merge. A cluster's id is the id of the item that founded it, so a new
    cluster needs no RETURNING.

    Clusters merge when a new item matches members of more than one (single linkage): the
    item bridges two postings of one campaign. Merges are kept as a union-find over
    `ClusterRef`; the surviving cluster of a group is its root (see `_survivor_order`)."""

    item_clusters: list[ClusterRef | None] = field(default_factory=list)
    existing_joins: dict[int, ClusterRef] = field(default_factory=dict)
    bands: list[list[int] | None] = field(default_factory=list)
    parent: dict[ClusterRef, ClusterRef] = field(default_factory=dict)
    # The first new item (batch index) that merged existing clusters into each survivor.
    bridges: dict[ClusterRef, int] = field(default_factory=dict)
    # Existing clusters that merge into another (set by `resolve`), and the sizes before (`lock`).
    merged: dict[int, ClusterRef] = field(default_factory=dict)
    sizes_before: dict[int, int] = field(default_factory=dict)

    def find(self, ref: ClusterRef) -> ClusterRef:
        root = ref
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while ref != root:  # path compression
            self.parent[ref], ref = root, self.parent[ref]
        return root

    def union(self, refs: Iterable[ClusterRef], bridge: int) -> ClusterRef:
        roots = sorted({self.find(ref) for ref in refs}, key=_survivor_order)
        survivor = roots[0]
        for other in roots[1:]:
            self.parent[other] = survivor
        if sum(isinstance(root, int) for root in roots) > 1:
            self.bridges.setdefault(survivor, bridge)
        return survivor

    def resolve(self) -> None:
        """Point every item at the survivor of its cluster (call once, after planning)."""
        self.item_clusters = [None if c is None else self.find(c) for c in self.item_clusters]
        self.existing_joins = {item_id: self.find(c) for item_id, c in self.existing_joins.items()}
        bridges: dict[ClusterRef, int] = {}
        for cluster, index in self.bridges.items():
            root = self.find(cluster)
            bridges[root] = min(index, bridges.get(root, index))
        self.bridges = bridges
        self.merged = {ref: self.find(ref) for ref in self.parent if isinstance(ref, int) and self.find(ref) != ref}

    def lock(self, session: Session) -> None:
        """Lock the clusters of every merge and read their sizes; call before inserting items.

        In id order, and before this transaction's items reference them: a writer that holds
        a shared lock (from a foreign key check) and then asks for an exclusive one would
        deadlock with another doing the same. A writer adding to one of these clusters
        finishes first, or waits and then fails its foreign key check and retries. If one of
        them was merged away since the plan was made, `ConcurrentChange` asks for a retry."""
        if not self.merged:
            return
        involved = sorted({*self.merged, *(r for r in self.merged.values() if isinstance(r, int))})
        query = select(Cluster.id, Cluster.size).where(_one_of(session, Cluster.id, involved)).order_by(Cluster.id)
        if _is_postgres(session):
            query = query.with_for_update()
        self.sizes_before = {cluster: size for cluster, size in session.execute(query)}
        if len(self.sizes_before) < len(involved):
            raise ConcurrentChange("a cluster to merge was merged into another meanwhile")

    def write(self, session: Session, item_ids: list[int], *, actor: ApiKey, now: datetime) -> list[int | None]:
        """Create and grow clusters, merge the bridged ones, write memberships and bands (after
        the items exist), and return the cluster id of each new item."""

        def resolve(cluster: ClusterRef | None) -> int | None:
            if isinstance(cluster, tuple):
                kind, seed = cluster
                return seed if kind == "stored" else item_ids[seed]
            return cluster

        merged, before = self.merged, self.sizes_before
        # Members each cluster gains: new items, stored items that join, merged clusters' members.
        added: dict[ClusterRef, int] = {}
        for cluster in [*self.item_clusters, *self.existing_joins.values()]:
            if cluster is not None:
                added[cluster] = added.get(cluster, 0) + 1
        for victim, root in merged.items():
            added[root] = added.get(root, 0) + before[victim]

        new_clusters = [c for c in added if isinstance(c, tuple)]
        if new_clusters:
            _bulk_insert(
                session,
                Cluster,
                [{"id": resolve(c), "size": added[c], "created_at": now} for c in new_clusters],
            )
        members = [
            {"item_id": item_id, "cluster": resolve(c)}
            for item_id, c in zip(item_ids, self.item_clusters, strict=True)
            if isinstance(c, tuple)
        ]
        members += [{"item_id": item_id, "cluster": resolve(c)} for item_id, c in self.existing_joins.items()]
        # Rows are locked in id order (here and below), the same in every writer, so two
        # concurrent batches touching the same rows wait for each other instead of deadlocking.
        members.sort(key=lambda row: row["item_id"])
        items = Item.__table__
        if members:
            session.execute(
                update(items).where(items.c.id == bindparam("item_id")).values(cluster_id=bindparam("cluster")),
                members,
            )
        if merged:
            session.execute(
                update(items).where(items.c.cluster_id == bindparam("victim")).values(cluster_id=bindparam("root")),
                [{"victim": victim, "root": resolve(root)} for victim, root in merged.items()],
            )
        if merged:
            session.execute(delete(Cluster).where(_one_of(session, Cluster.id, list(merged))))
            self._audit_merges(session, merged, before, added, item_ids, actor=actor, now=now)
        band_rows = [
            {"item_id": item_id, "band": band, "hash": key}
            for item_id, keys in zip(item_ids, self.bands, strict=True)
            if keys
            for band, key in enumerate(keys)
        ]
        if band_rows:
            _bulk_insert(session, ItemBand, band_rows)
        # Last: every post of a campaign grows the same cluster row, so its lock is the one
        # concurrent writers queue for; taking it late holds it for the shortest time.
        growth = sorted(({"cid": c, "added": n} for c, n in added.items() if isinstance(c, int) and n),
                        key=lambda row: row["cid"])
        if growth:
            clusters = Cluster.__table__
            session.execute(
                update(clusters)
                .where(clusters.c.id == bindparam("cid"))
                .values(size=clusters.c.size + bindparam("added")),
                growth,
            )
        return [resolve(c) for c in self.item_clusters]

    def _audit_merges(
        self,
        session: Session,
        merged: dict[int, ClusterRef],
        before: dict[int, int],
        added: dict[ClusterRef, int],
        item_ids: list[int],
        *,
        actor: ApiKey,
        now: datetime,
    ) -> None:
        """One ``cluster.merge`` entry per surviving cluster, on the item that bridged them."""
        rows = []
        for root, bridge in self.bridges.items():
            victims = sorted(v for v, r in merged.items() if r == root)
            if not victims or not isinstance(root, int):
                continue
            rows.append(
                {
                    "at": now,
                    "actor_id": actor.id,
                    "actor": _actor_name(actor),
                    "action": "cluster.merge",
                    "item_id": item_ids[bridge],
                    "before": {"clusters": [{"id": c, "size": before.get(c, 0)} for c in [root, *victims]]},
                    "after": {"cluster": root, "size": before.get(root, 0) + added[root], "merged": victims},
                    "note": f"item {item_ids[bridge]} is a near-duplicate of members of clusters "
                    + ", ".join(str(c) for c in [root, *victims]),
                }
            )
        if rows:
            _bulk_insert(session, AuditEntry, rows)


def _assign_clusters(session: Session, *, fresh: list[NewItem], min_similarity: float) -> _ClusterPlan:
    """Match each new item to every similar earlier item (stored or earlier in the batch): it
    joins their cluster, and when they belong to different clusters those merge."""
    keys_per_item = [similarity.band_keys(n.signature) if n.signature else None for n in fresh]
    all_keys = sorted({key for keys in keys_per_item if keys for key in keys})
    # Candidates are addressed by position: stored items first, then this batch's items.
    signatures: list[list[int]] = []
    cluster_of: list[ClusterRef | None] = []
    stored_ids: list[int] = []
    band_positions: dict[int, list[int]] = {}
    if all_keys:
        stored_position: dict[int, int] = {}
        postgres = _is_postgres(session)
        owners = session.execute(_band_owners(postgres), {"band_keys": _in_values(postgres, all_keys)})
        for item_id, key, minhash, cluster_id in owners:
            if item_id not in stored_position:
                stored_position[item_id] = len(signatures)
                stored_ids.append(item_id)
                signatures.append(json.loads(minhash))  # once per item, not once per band
                cluster_of.append(cluster_id)
            band_positions.setdefault(key, []).append(stored_position[item_id])
    stored_count = len(signatures)
    # Every signature a new item may be compared with, addressed by position.
    no_signature = [0] * similarity.NUM_HASHES
    signatures += [n.signature or no_signature for n in fresh]
    matrix = np.array(signatures, dtype=np.int64).reshape(-1, similarity.NUM_HASHES)

    plan = _ClusterPlan()
    for index, keys in enumerate(keys_per_item):
        if not keys:
            plan.item_clusters.append(None)
            plan.bands.append(None)
            continue
        positions = sorted({p for key in keys for p in band_positions.get(key, ())[-OWNERS_PER_BAND:]})
        matches: list[int] = []
        if positions:
            scores = (matrix[positions] == matrix[stored_count + index]).mean(axis=1)
            matches = [p for p, score in zip(positions, scores.tolist(), strict=True) if score >= min_similarity]
        cluster: ClusterRef | None = None
        if matches:
            refs: list[ClusterRef] = []
            for p in matches:
                ref = cluster_of[p]
                if ref is None:  # a lone item: it founds a cluster now
                    if p < stored_count:
                        ref = ("stored", stored_ids[p])
                        plan.existing_joins[stored_ids[p]] = ref
                    else:
                        ref = ("batch", p - stored_count)
                        plan.item_clusters[p - stored_count] = ref
                    cluster_of[p] = ref
                refs.append(ref)
            cluster = plan.union(refs, bridge=index)
        position = stored_count + index
        cluster_of.append(cluster)
        plan.item_clusters.append(cluster)
        indexed = cluster is None
        plan.bands.append(keys if indexed else None)
        if indexed:
            for key in keys:
                band_positions.setdefault(key, []).append(position)
    plan.resolve()
    return plan


@functools.cache
def _band_owners(postgres: bool) -> Select[Any]:
    """(item_id, band hash, minhash, cluster_id) of the newest `OWNERS_PER_BAND` owners of
    each of ``:band_keys``, in one statement.

    On PostgreSQL a LATERAL top-N per key reads a few entries of the (hash, item_id) index
    however many items share a band; a window over all owners reads and sorts every one of
    them (1.5 ms for a common band among 30,000 items, growing with the table). SQLite has no
    LATERAL; there the window reads all owners, from the same (covering) index."""
    if postgres:
        wanted = (
            func.unnest(bindparam("band_keys", type_=postgresql.ARRAY(BigInteger)))
            .table_valued("hash")
            .render_derived()
        )
        newest = (
            select(ItemBand.item_id)
            .where(ItemBand.hash == wanted.c.hash)
            .order_by(ItemBand.item_id.desc())
            .limit(OWNERS_PER_BAND)
            .lateral()
        )
        owners = select(newest.c.item_id, wanted.c.hash).select_from(wanted).join(newest, true()).subquery()
    else:
        ranked = (
            select(
                ItemBand.item_id,
                ItemBand.hash,
                func.row_number().over(partition_by=ItemBand.hash, order_by=ItemBand.item_id.desc()).label("rank"),
            )
            .where(_in_param(postgres, ItemBand.hash, "band_keys"))
            .subquery()
        )
        owners = select(ranked.c.item_id, ranked.c.hash).where(ranked.c.rank <= OWNERS_PER_BAND).subquery()
    # Core columns (no ORM loading), and the signature as text: an item owning several of the
    # keys comes once per key, and its JSON is decoded once.
    items = Item.__table__
    return (
        select(owners.c.item_id, owners.c.hash, cast(items.c.minhash, Text), items.c.cluster_id)
        .join_from(owners, items, items.c.id == owners.c.item_id)
        .order_by(owners.c.hash, owners.c.item_id)
    )


# Below this many rows a plain multi-row INSERT is one round trip; COPY costs two (start, end).
COPY_MIN_ROWS = 200


def _bulk_insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows. On PostgreSQL large sets of the plain-valued tables (bands, contacts)
    go through COPY: psycopg's executemany costs a round of parsing per row, ten thousand rows
    a batch."""
    table = model.__table__
    if model in (ItemBand, ItemContact) and len(rows) >= COPY_MIN_ROWS and _is_postgres(session):
        columns = list(rows[0])
        cursor = session.connection().connection.driver_connection.cursor()
        names = ", ".join(f'"{column}"' for column in columns)
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
        return
    session.execute(insert(table), rows)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN values`` with the values in one bound parameter (a JSON list on SQLite, an
    array on PostgreSQL): thousands of separate IN parameters cost more to compile than to run."""
    values = list(values)
    if _is_postgres(session):
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    rows = func.json_each(bindparam(None, json.dumps(values))).table_valued("value")
    return column.in_(select(rows.c.value))


def _in_param(postgres: bool, column: Any, name: str) -> Any:
    """`_one_of` for a statement built once: ``column IN :name``, bound with `_in_values`."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    rows = func.json_each(bindparam(name, type_=String)).table_valued("value")
    return column.in_(select(rows.c.value))


def _in_values(postgres: bool, values: Iterable[Any]) -> list[Any] | str:
    return list(values) if postgres else json.dumps(list(values))


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
