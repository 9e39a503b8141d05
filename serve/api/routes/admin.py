"""Administration: API keys, tenant lexicon terms and callback secrets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import select

from serve import crud
from serve.api.deps import AdminKey, ServicesDep
from serve.db_models import ApiKey, TenantTerm
from serve.schemas import (
    MAX_ID,
    CallbackSecret,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    TermCreate,
    TermList,
    TermOut,
)
from serve.security import callback_secret

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Tenant = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        role=row.role,
        tenant=row.tenant,
        prefix=row.key_prefix,
        rate_limit_per_minute=row.rate_limit_per_minute,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post("/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, summary="Create an API key")
def create_key(body: KeyCreate, key: AdminKey, services: ServicesDep) -> KeyCreated:
    """The key is in this response only; the service keeps its hash."""
    with services.db.write() as session:
        row, secret = crud.create_api_key(
            session,
            name=body.name,
            role=body.role,
            tenant=body.tenant,
            rate_limit_per_minute=body.rate_limit_per_minute,
            actor=key,
        )
        return KeyCreated(key=secret, **key_out(row).model_dump())


@router.get("/keys", response_model=KeyList, summary="List API keys")
def list_keys(key: AdminKey, services: ServicesDep) -> KeyList:
    with services.db.read() as session:
        return KeyList(keys=[key_out(row) for row in session.scalars(select(ApiKey).order_by(ApiKey.id))])


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key")
def revoke_key(key_id: RowId, key: AdminKey, services: ServicesDep) -> KeyOut:
    with services.db.write() as session:
        return key_out(crud.revoke_api_key(session, key_id=key_id, actor=key))


def term_out(row: TenantTerm) -> TermOut:
    return TermOut(
        id=row.id, tenant=row.tenant, kind=row.kind, label=row.label or None, term=row.term, created_at=row.created_at
    )


@router.get("/tenants/{tenant}/terms", response_model=TermList, summary="A tenant's own lexicon terms")
def list_terms(tenant: Tenant, key: AdminKey, services: ServicesDep) -> TermList:
    with services.db.read() as session:
        rows = session.scalars(select(TenantTerm).where(TenantTerm.tenant == tenant).order_by(TenantTerm.id))
        return TermList(terms=[term_out(row) for row in rows])


@router.post(
    "/tenants/{tenant}/terms",
    response_model=TermOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a block or allow term for a tenant",
)
def add_term(tenant: Tenant, body: TermCreate, key: AdminKey, services: ServicesDep) -> TermOut:
    """Applies to the tenant's next screening request, without a restart."""
    label = body.label.value if body.label else None
    # Refuse a term the lexicon cannot use (e.g. only punctuation) now, not at screening time.
    services.screening.lexicons.build(
        block=[(label, body.term)] if body.kind == "block" and label else [],
        allow=[body.term] if body.kind == "allow" else [],
    )
    with services.db.write() as session:
        row = crud.add_term(session, tenant=tenant, kind=body.kind, label=label, term=body.term, actor=key)
        return term_out(row)


@router.delete(
    "/tenants/{tenant}/terms/{term_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a term"
)
def delete_term(tenant: Tenant, term_id: RowId, key: AdminKey, services: ServicesDep) -> None:
    with services.db.write() as session:
        crud.delete_term(session, tenant=tenant, term_id=term_id, actor=key)


@router.get(
    "/tenants/{tenant}/callback-secret", response_model=CallbackSecret, summary="The tenant's callback signing secret"
)
def get_callback_secret(tenant: Tenant, key: AdminKey, services: ServicesDep) -> CallbackSecret:
    """Give this to the platform so it can check ``X-Jingwang-Signature`` on callbacks."""
    return CallbackSecret(
        tenant=tenant, secret=callback_secret(services.settings.secret_key.get_secret_value(), tenant)
    )
