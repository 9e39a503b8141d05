"""Rate limits: per-process token buckets, and buckets shared in Redis by several workers.

Redis tests read ``JINGWANG_TEST_REDIS_URL`` and skip when it is unset; each uses a key
prefix of its own, removed afterwards. The fail-open tests need no Redis.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serve import security
from serve.main import create_app
from serve.security import LocalRateLimiter, RedisRateLimiter, make_rate_limiter
from tests.serve.conftest import ADMIN_KEY, FakeScreener, make_settings

REDIS_SKIP = "JINGWANG_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)"


class Clock:
    """Stands in for time.monotonic in serve.security."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(security.time, "monotonic", clock)
    return clock


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    return f"redis://127.0.0.1:{port}/0"


# ---------------------------------------------------------------- per process


def test_local_bucket_bursts_to_the_limit_then_refills(clock: Clock) -> None:
    limiter = LocalRateLimiter()
    assert [limiter.acquire(1, 6) for _ in range(6)] == [0.0] * 6
    assert limiter.acquire(1, 6) == pytest.approx(10.0)  # 6/min: one token per 10 s
    assert limiter.acquire(2, 6) == 0.0  # buckets are per key
    clock.now += 10.0
    assert limiter.acquire(1, 6) == 0.0
    assert limiter.acquire(1, 6) > 0


def test_backend_follows_the_redis_setting(tmp_path: Any) -> None:
    assert isinstance(make_rate_limiter(None), LocalRateLimiter)
    assert isinstance(make_rate_limiter("redis://127.0.0.1:6379/0"), RedisRateLimiter)  # connects lazily
    assert make_settings(f"sqlite:///{tmp_path / 'a.db'}", redis_url="").redis_url is None
    with pytest.raises(ValidationError, match="redis://"):
        make_settings(f"sqlite:///{tmp_path / 'a.db'}", redis_url="http://127.0.0.1:6379")


# ---------------------------------------------------------------- Redis down: fail open


def test_unreachable_redis_fails_open_to_per_worker_limits(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter.from_url(closed_port_url(), timeout_seconds=0.2)
    with caplog.at_level(logging.WARNING, logger="serve.security"):
        waits = [limiter.acquire(7, 2) for _ in range(3)]
    # Not refused for want of Redis, yet a runaway client still meets the per-worker limit.
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0
    warnings = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "failing open" in warnings[0]  # once per retry interval


def test_redis_is_tried_again_after_the_retry_interval(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    limiter = RedisRateLimiter.from_url(closed_port_url(), retry_seconds=5.0)
    calls: list[Any] = []

    def broken(**kwargs: Any) -> str:
        calls.append(kwargs)
        raise redis.exceptions.ConnectionError("connection refused")

    limiter._script = broken  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="serve.security"):
        assert limiter.acquire(1, 100) == 0.0
        assert limiter.acquire(1, 100) == 0.0
        assert len(calls) == 1  # within the interval Redis is not asked again
        limiter._script = lambda **kwargs: b"3.5"  # type: ignore[assignment]
        clock.now += 5.0
        assert limiter.acquire(1, 100) == 3.5  # Redis's answer again
    assert any("Redis is back" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- shared in Redis


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(URL, a key prefix of this test's own); every key under the prefix is removed after."""
    url = os.environ.get("JINGWANG_TEST_REDIS_URL")
    if not url:
        pytest.skip(REDIS_SKIP)
    import redis

    server = redis.Redis.from_url(url)
    prefix = f"jingwang-test-{uuid.uuid4().hex[:10]}:ratelimit"
    yield url, prefix
    for key in server.scan_iter(f"{prefix}:*"):
        server.delete(key)
    server.close()


@pytest.mark.redis
def test_two_workers_share_one_limit(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    first, second = (RedisRateLimiter.from_url(url, prefix=prefix) for _ in range(2))
    waits = [(first if i % 2 else second).acquire(11, 5) for i in range(5)]
    assert waits == [0.0] * 5
    # The sixth request is refused whichever worker gets it: one bucket, not one each.
    for limiter in (first, second):
        assert 0 < limiter.acquire(11, 5) <= 12.0  # 5/min: one token per 12 s
    assert first.acquire(12, 5) == 0.0  # other keys have buckets of their own
    assert first.fallback._buckets == {} == second.fallback._buckets  # Redis answered every time


@pytest.mark.redis
def test_shared_bucket_refills_with_time(redis_prefix: tuple[str, str]) -> None:
    import time

    url, prefix = redis_prefix
    first, second = (RedisRateLimiter.from_url(url, prefix=prefix) for _ in range(2))
    for _ in range(60):
        assert first.acquire(21, 60) == 0.0
    assert second.acquire(21, 60) > 0  # 60/min: one token per second
    time.sleep(1.1)
    assert second.acquire(21, 60) == 0.0
    assert first.acquire(21, 60) > 0


def worker_app(database_url: str, redis_url: str | None, prefix: str | None) -> Any:
    """One worker process's app: the same database, and the same Redis when given."""
    app = create_app(make_settings(database_url, redis_url=redis_url), screener=FakeScreener(), start_worker=False)
    if prefix is not None:
        app.state.services.rate_limiter.prefix = prefix
    return app


@pytest.mark.redis
def test_two_apps_on_one_redis_enforce_the_configured_limit(
    redis_prefix: tuple[str, str], tmp_path: Any
) -> None:
    url, prefix = redis_prefix
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"

    def alternate(redis_url: str | None) -> list[int]:
        apps = [worker_app(database_url, redis_url, prefix if redis_url else None) for _ in range(2)]
        with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
            body = {"name": f"k-{uuid.uuid4().hex[:6]}", "role": "platform", "tenant": "alpha",
                    "rate_limit_per_minute": 3}
            created = one.post("/v1/admin/keys", json=body, headers={"X-API-Key": ADMIN_KEY})
            assert created.status_code == 201, created.text
            headers = {"X-API-Key": created.json()["key"]}
            statuses = [(one, two)[i % 2].get("/v1/items", headers=headers).status_code for i in range(4)]
        for app in apps:
            app.state.services.db.engine.dispose()
        return statuses

    assert alternate(None) == [200, 200, 200, 200]  # per process: each worker allows 3
    assert alternate(url) == [200, 200, 200, 429]  # shared: 3 in all
