"""Fingerprints, content hashes, near-duplicates and both state stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.dedup import (
    NEAR_DISTANCE,
    PageState,
    RedisState,
    SQLiteState,
    content_hash,
    hamming,
    new_record,
    simhash,
    url_fingerprint,
)

AD = (
    "本机构专业代孕十年，试管代怀包成功，包男孩包女孩任选，全程一对一服务，境外代孕手续全包。"
    "费用透明，签合同，不成功全额退款。有意向的夫妻加微信 abc_test123 详谈，电话 138-0000-0001。"
)
REPOST = AD.replace("138-0000-0001", "138-0000-0009")
OTHER = "出售婴儿车一辆，九成新，带遮阳棚和雨罩，原价一千二现价四百，另有婴儿床一起转让，自提。"


def test_url_fingerprint_is_canonical() -> None:
    assert url_fingerprint("http://a.cn/p?b=2&a=1#top") == url_fingerprint("http://a.cn/p?a=1&b=2")
    assert url_fingerprint("http://a.cn/p?a=1") != url_fingerprint("http://a.cn/p?a=2")


def test_content_hash_ignores_whitespace_and_punctuation_only() -> None:
    assert content_hash("出售 婴儿车，九成新。") == content_hash("出售婴儿车 九成新")
    assert content_hash("出售婴儿车 九成新") != content_hash("出售婴儿车 八成新")


def test_simhash_finds_reposts_but_not_other_posts() -> None:
    assert hamming(simhash(AD), simhash(REPOST)) <= NEAR_DISTANCE
    assert hamming(simhash(AD), simhash(OTHER)) > NEAR_DISTANCE
    assert simhash("") == 0


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Iterator[SQLiteState]:
    state = SQLiteState(tmp_path / "state.sqlite")
    yield state
    state.close()


@pytest.fixture
def redis_state() -> Iterator[RedisState]:
    url = os.environ.get("JINGWANG_TEST_REDIS_URL")
    if not url:
        pytest.skip("JINGWANG_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    import redis

    server = redis.Redis.from_url(url)
    prefix = f"jingwang-test-{uuid.uuid4().hex[:8]}"
    yield RedisState(server, prefix)
    for key in server.scan_iter(f"{prefix}:*"):
        server.delete(key)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def state(request: pytest.FixtureRequest) -> PageState:
    return request.getfixturevalue(f"{request.param}_state")


def test_state_versions_and_near_lookup(state: PageState) -> None:
    first = new_record("http://a.cn/1", content_hash(AD), simhash(AD), None)
    state.put(first)
    assert state.get(first.url_fp) == first
    assert state.find_near(simhash(AD), exclude=first.url_fp) is None  # not itself

    repost = new_record("http://a.cn/2", content_hash(REPOST), simhash(REPOST), None)
    near = state.find_near(repost.simhash, exclude=repost.url_fp)
    assert near is not None and near.url == "http://a.cn/1"
    assert state.find_near(simhash(OTHER), exclude="x") is None

    changed = new_record("http://a.cn/1", content_hash(OTHER), simhash(OTHER), state.get(first.url_fp))
    state.put(changed)
    assert changed.version == 2 and changed.first_seen == first.first_seen
    # The old sim-hash bands went with the old version.
    assert state.find_near(repost.simhash, exclude=repost.url_fp) is None

    state.forget(first.url_fp)
    assert state.get(first.url_fp) is None
    assert state.find_near(simhash(OTHER), exclude="x") is None


def test_sqlite_state_outlives_the_process(tmp_path: Path) -> None:
    record = new_record("http://a.cn/1", content_hash(AD), simhash(AD), None)
    first = SQLiteState(tmp_path / "s.sqlite")
    first.put(record)
    first.close()
    again = SQLiteState(tmp_path / "s.sqlite")
    assert again.get(record.url_fp) == record
    again.close()
