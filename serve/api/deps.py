"""Dependencies shared by the routes, as ``Annotated`` aliases.

``ServicesDep`` is the app's one set of services (settings, database, the scorer loaded
once, metrics); ``CurrentKey`` authenticates the request's API key (``X-API-Key`` or
``Authorization: Bearer``) and applies its rate limit; ``PlatformKey``, ``ReviewerKey`` and
``AdminKey`` also check the role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select

from serve.config import Settings
from serve.db import Database
from serve.db_models import ApiKey
from serve.errors import Forbidden, RateLimited, Unauthorized
from serve.metrics import Metrics
from serve.screening import ScreenerLike, ScreeningService
from serve.security import RateLimiter, Role, SessionSigner, hash_key


@dataclass
class Services:
    """Everything a request may need, built once per app by `serve.main.create_app`."""

    settings: Settings
    db: Database
    screener: ScreenerLike
    screening: ScreeningService
    metrics: Metrics
    rate_limiter: RateLimiter
    signer: SessionSigner


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")


# Built once: asked on every request.
_KEY_BY_HASH = select(ApiKey).where(ApiKey.key_hash == bindparam("key_hash"))


def authenticate(services: Services, key: str | None) -> ApiKey:
    """The active key row for ``key``, or `Unauthorized` saying what is wrong."""
    if not key:
        raise Unauthorized("missing API key: send it as X-API-Key or Authorization: Bearer")
    with services.db.lookup() as session:
        row = session.scalar(_KEY_BY_HASH, {"key_hash": hash_key(key)})
    if row is None:
        raise Unauthorized("unknown API key")
    if row.revoked_at is not None:
        raise Unauthorized("this API key has been revoked")
    return row


def current_key(
    services: ServicesDep,
    header_key: Annotated[str | None, Security(api_key_header)],
    bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> ApiKey:
    """The authenticated key of this request, within its rate limit."""
    key = header_key or (bearer_key.credentials if bearer_key else None)
    row = authenticate(services, key)
    limit = row.rate_limit_per_minute or services.settings.rate_limit_per_minute
    wait = services.rate_limiter.acquire(row.id, limit)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {limit} requests per minute exceeded; retry in {wait:.1f} s",
            retry_after=wait,
        )
    return row


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def require_role(*roles: Role):  # noqa: ANN201 - returns a dependency callable
    """A dependency that admits only keys with one of ``roles``."""
    allowed = {role.value for role in roles}

    def check(key: CurrentKey) -> ApiKey:
        if key.role not in allowed:
            raise Forbidden(f"this needs a key with role {' or '.join(sorted(allowed))}; yours is {key.role}")
        return key

    return check


PlatformKey = Annotated[ApiKey, Depends(require_role(Role.PLATFORM))]
ReviewerKey = Annotated[ApiKey, Depends(require_role(Role.REVIEWER, Role.ADMIN))]
AdminKey = Annotated[ApiKey, Depends(require_role(Role.ADMIN))]


def can_see(key: ApiKey, tenant: str) -> bool:
    """Platforms see their own tenant only; reviewers and admins see every tenant."""
    return key.role != Role.PLATFORM or key.tenant == tenant
