"""Errors the service raises on purpose, turned into HTTP responses only at the API edge.

    ServeError                 base class; carries an HTTP status and a message
    ├── BadRequest        400  a request that parses but makes no sense
    ├── Unauthorized      401  missing, unknown or revoked API key
    ├── Forbidden         403  the key's role may not do this
    ├── NotFound          404  no such item, task, job or key (or not visible to this tenant)
    ├── Conflict          409  the state changed under the caller (lease lost, already decided)
    ├── PayloadTooLarge   413  request body, batch or text over its limit
    ├── InvalidInput      422  a field value is wrong (unknown label, empty text, ...)
    └── RateLimited       429  the key sent too many requests; carries ``retry_after``

Library code in serve/ raises these; `serve.main` registers one handler that renders
``{"detail": message}`` with the status, so every 4xx names the problem.
"""

from __future__ import annotations


class ServeError(Exception):
    """Base class of errors that become an HTTP response."""

    status_code = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class BadRequest(ServeError):
    status_code = 400


class Unauthorized(ServeError):
    status_code = 401


class Forbidden(ServeError):
    status_code = 403


class NotFound(ServeError):
    status_code = 404


class Conflict(ServeError):
    status_code = 409


class PayloadTooLarge(ServeError):
    status_code = 413


class InvalidInput(ServeError):
    status_code = 422


class RateLimited(ServeError):
    status_code = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)
