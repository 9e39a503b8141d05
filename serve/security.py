"""API keys, rate limits and the console's session cookie.

Keys are 256-bit random tokens, so a plain SHA-256 of the key is a safe thing to store and
look up (a slow password hash buys nothing against a guess space of 2**256).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from enum import StrEnum

KEY_PREFIX = "jw_"


class Role(StrEnum):
    """What a key may do: platforms submit and read their own items; reviewers review; admins manage."""

    PLATFORM = "platform"
    REVIEWER = "reviewer"
    ADMIN = "admin"


def new_key() -> str:
    """A fresh API key (shown once; only its hash is stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters of a key, kept so that admins can tell keys apart."""
    return key[:10]


def callback_secret(secret_key: str, tenant: str) -> str:
    """The tenant's secret for signing callbacks, derived so that none is stored in the database."""
    return hmac.new(secret_key.encode(), f"callback:{tenant}".encode(), hashlib.sha256).hexdigest()


def sign_callback(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Jingwang-Signature`` value: HMAC-SHA256 over ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class RateLimiter:
    """Token buckets per key: ``limit`` requests per minute, bursting up to ``limit`` at once.

    Per process: behind several workers each enforces its own share; that is enough to
    stop a runaway client, which is what the limit is for.
    """

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: int, limit_per_minute: int) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        rate = limit_per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, updated = self._buckets.get(key_id, (float(limit_per_minute), now))
            tokens = min(float(limit_per_minute), tokens + (now - updated) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


class SessionSigner:
    """Signs the console's session cookie: ``key_id.expiry.signature``.

    The cookie names the key but holds no secret; the server re-checks on every request that
    the key still exists and is not revoked.
    """

    def __init__(self, secret_key: str, max_age_seconds: int = 12 * 3600) -> None:
        self._secret = hashlib.sha256(b"console-session:" + secret_key.encode()).digest()
        self.max_age_seconds = max_age_seconds

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def dumps(self, key_id: int) -> str:
        payload = f"{key_id}.{int(time.time()) + self.max_age_seconds}"
        return f"{payload}.{self._mac(payload)}"

    def loads(self, cookie: str) -> int | None:
        """The key id in a valid, unexpired cookie, else None."""
        try:
            key_id, expiry, mac = cookie.split(".")
            valid = hmac.compare_digest(mac, self._mac(f"{key_id}.{expiry}"))
            return int(key_id) if valid and int(expiry) > time.time() else None
        except ValueError:
            return None

    def csrf_token(self, cookie: str) -> str:
        """A token bound to the session, required on every console form post."""
        return self._mac("csrf:" + cookie)[:32]
