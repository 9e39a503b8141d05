"""API keys, rate limits (per process, or shared in Redis) and the console's session cookie.

Keys are 256-bit random tokens, so a plain SHA-256 of the key is a safe thing to store and
look up (a slow password hash buys nothing against a guess space of 2**256).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

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


class RateLimiter(Protocol):
    """What the API needs of a rate limiter (`LocalRateLimiter` or `RedisRateLimiter`)."""

    def acquire(self, key_id: int, limit_per_minute: int) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        ...


class LocalRateLimiter:
    """Token buckets per key in this process: ``limit`` requests per minute, bursting up to
    ``limit`` at once.

    Behind ``--workers N`` each worker enforces its own bucket (N times the limit in all);
    `RedisRateLimiter` shares one bucket between workers.
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


# One bucket per key as a hash {tokens, ts}, refilled and taken from in one atomic step.
# Time is the Redis server's, so workers on hosts with skewed clocks agree. A float
# returned from Lua would be truncated to an integer reply, hence tostring. An idle
# bucket is full again after 60 s, so it may expire then.
_TOKEN_BUCKET_LUA = """
local limit = tonumber(ARGV[1])
local rate = limit / 60.0
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = limit
  ts = now
end
tokens = math.min(limit, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 61000)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same token buckets as `LocalRateLimiter`, kept in Redis so that every worker
    (and every host) using this Redis shares one limit per key.

    If Redis cannot be reached, requests are *not* refused: the limiter fails open to this
    process's own `LocalRateLimiter` buckets (per-worker limits, as without Redis) and logs
    a warning, at most once per ``retry_seconds``. Screening must not stop because the rate
    limiter's store is down; a runaway client is still held to the per-worker limit. Redis
    is tried again after ``retry_seconds``, so that a dead server costs one connection
    timeout per interval rather than one per request.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "jingwang:ratelimit",
        retry_seconds: float = 5.0,
    ) -> None:
        self._client = client
        self._script = client.register_script(_TOKEN_BUCKET_LUA)
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.fallback = LocalRateLimiter()
        self._down_until = 0.0
        self._degraded = False
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float = 0.5, **kwargs: Any) -> RedisRateLimiter:
        """A limiter on the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        Short timeouts: the limiter runs on every request, and a slow Redis should cost
        that request half a second at most before it fails open.
        """
        import redis

        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        return cls(client, **kwargs)

    def acquire(self, key_id: int, limit_per_minute: int) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        from redis.exceptions import RedisError

        if time.monotonic() >= self._down_until:
            try:
                wait = float(self._script(keys=[f"{self.prefix}:{key_id}"], args=[limit_per_minute]))
            except (RedisError, OSError, ValueError) as exc:
                self._mark_down(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    log.warning("rate limiter: Redis is back; limits are shared again")
                return max(0.0, wait)
        return self.fallback.acquire(key_id, limit_per_minute)

    def _mark_down(self, exc: Exception) -> None:
        with self._lock:
            # Several threads may fail at once: one warning per retry interval is enough.
            warn = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + self.retry_seconds
            self._degraded = True
        if warn:
            log.warning(
                "rate limiter: Redis unavailable (%s: %s); failing open to per-worker limits, "
                "retrying Redis in %.0f s", type(exc).__name__, exc, self.retry_seconds,
            )


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    """The shared Redis limiter when ``redis_url`` is set, else per-process buckets."""
    return RedisRateLimiter.from_url(redis_url) if redis_url else LocalRateLimiter()


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
