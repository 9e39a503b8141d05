"""Distributed mode against the real Redis: two nodes share one queue and dupefilter."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crawler.conftest import REPO, by_path, crawl_command, read_feed, run_crawl
from tests.crawler.site.mock_site import MockSite, write_site_files

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def redis_url() -> Iterator[tuple[str, str]]:
    """(URL, a key prefix of this test's own); every key under the prefix is removed after."""
    url = os.environ.get("JINGWANG_TEST_REDIS_URL")
    if not url:
        pytest.skip("JINGWANG_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    import redis

    server = redis.Redis.from_url(url)
    prefix = f"jingwang-test-{uuid.uuid4().hex[:10]}"
    yield url, prefix
    for key in server.scan_iter(f"{prefix}:*"):
        server.delete(key)


def test_two_nodes_share_the_crawl_and_fetch_each_page_once(
    redis_url: tuple[str, str], tmp_path: Path
) -> None:
    import redis

    url, prefix = redis_url
    # Slow pages keep the crawl longer than the nodes' start-up skew on a loaded machine,
    # so both are up while there is work to share.
    with MockSite(delay=0.5) as site:
        files = write_site_files(site.base, tmp_path / "sites")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        common = ["--model", "lexicon", "--redis", url, "--redis-prefix", prefix,
                  "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]
        nodes = [
            subprocess.Popen(
                crawl_command(files["forum"], "-o", str(tmp_path / f"node{i}.jsonl"), *common),
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for i in (1, 2)
        ]
        errors = [node.communicate(timeout=120)[1] for node in nodes]
        assert [node.returncode for node in nodes] == [0, 0], [e[-2000:] for e in errors]
        hits = dict(site.hits)

        feeds = [read_feed(tmp_path / f"node{i}.jsonl") for i in (1, 2)]
        assert all(feeds), "both nodes should have crawled part of the site"
        for path in MockSite.forum_detail_paths() + [f"/forum/list-{n}.html" for n in (1, 2, 3)]:
            assert hits.get(path) == 1, (path, hits.get(path))
        assert "/private/secret.html" not in hits
        union = feeds[0] + feeds[1]
        assert sorted(by_path(union)) == sorted(MockSite.forum_detail_paths())
        assert len(union) == len(MockSite.forum_detail_paths())

        server = redis.Redis.from_url(url)
        # The finished crawl released its fingerprints and queue; the page state stays.
        assert not server.exists(f"{prefix}:mock-forum:dupefilter")
        assert not server.exists(f"{prefix}:mock-forum:requests")
        assert not server.exists(f"{prefix}:mock-forum:nodes")
        assert server.hlen(f"{prefix}:mock-forum:state:pages") == len(MockSite.forum_detail_paths())

        # A later recrawl from any node sees the shared state: only the changed page is new.
        site.version = 2
        again = run_crawl(
            files["forum"], "-o", str(tmp_path / "again.jsonl"), *common,
            "-s", "JINGWANG_REDIS_IDLE_CLOSE=0", cwd=tmp_path,  # alone: no one to wait for
        )
        assert again.returncode == 0, again.stderr[-3000:]
    changed = read_feed(tmp_path / "again.jsonl")
    assert [item["url"].rsplit("/", 1)[1] for item in changed] == ["changing.html"]
    assert changed[0]["version"] == 2 and changed[0]["decision"] == "block"


def test_a_node_stopped_mid_crawl_leaves_its_share_to_the_others(
    redis_url: tuple[str, str], tmp_path: Path
) -> None:
    import signal
    import time

    url, prefix = redis_url
    with MockSite(delay=0.2) as site:
        files = write_site_files(site.base, tmp_path / "sites")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        common = ["--model", "lexicon", "--redis", url, "--redis-prefix", prefix,
                  "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]
        nodes = [
            subprocess.Popen(
                crawl_command(files["forum"], "-o", str(tmp_path / f"node{i}.jsonl"), *common),
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for i in (1, 2)
        ]
        deadline = time.monotonic() + 60
        while not read_feed(tmp_path / "node1.jsonl"):
            assert time.monotonic() < deadline and nodes[0].poll() is None, "node 1 did nothing"
            time.sleep(0.05)
        nodes[0].send_signal(signal.SIGTERM)
        errors = [node.communicate(timeout=120)[1] for node in nodes]
        assert "(shutdown)" in errors[0]
        assert nodes[1].returncode == 0, errors[1][-2000:]
        hits = dict(site.hits)
    for path in MockSite.forum_detail_paths():
        assert hits.get(path) == 1, (path, hits.get(path))
    union = read_feed(tmp_path / "node1.jsonl") + read_feed(tmp_path / "node2.jsonl")
    assert sorted(by_path(union)) == sorted(MockSite.forum_detail_paths())
    assert len(union) == len(MockSite.forum_detail_paths())
