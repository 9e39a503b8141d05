"""Fixtures of the crawler tests: the local mock site and a way to run real crawls.

Crawls run as subprocesses (`python -m jingwang.cli crawl ...`): a Twisted reactor cannot
restart inside one test process, and a subprocess can be killed like a real crawl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.crawler.site.mock_site import MockSite, write_site_files

REPO = Path(__file__).resolve().parents[2]

# Polite delays and back-off make sense on the internet, not against a loopback mock site.
FAST = [
    "-s", "DOWNLOAD_DELAY=0",
    "-s", "AUTOTHROTTLE_ENABLED=False",
    "-s", "RETRY_BACKOFF_BASE=0.05",
    "-s", "JINGWANG_API_BACKOFF=0.05",
    "-s", "TELNETCONSOLE_ENABLED=False",
]


def crawl_command(site_file: Path, *args: str) -> list[str]:
    """The argv of one `jingwang crawl` with the lexicon scorer and fast settings."""
    return [sys.executable, "-m", "jingwang.cli", "crawl", str(site_file), *args, *FAST]


def run_crawl(site_file: Path, *args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run a crawl to completion; the summary table and Scrapy's log land in stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        crawl_command(site_file, *args),
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def read_feed(path: Path) -> list[dict[str, Any]]:
    """The feed's items (an absent feed is an empty one)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def by_path(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Items keyed by URL path (the port differs per run)."""
    from urllib.parse import urlparse

    return {urlparse(item["url"]).path: item for item in items}


@pytest.fixture(scope="session")
def mock_site() -> Iterator[MockSite]:
    """The shared, read-only mock site (tests that change it start their own)."""
    with MockSite() as site:
        yield site


@pytest.fixture(scope="session")
def site_files(mock_site: MockSite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_site_files(mock_site.base, tmp_path_factory.mktemp("sites"))


@pytest.fixture(scope="session")
def forum_crawl(
    mock_site: MockSite, site_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One full crawl of the mock forum with in-process screening; shared by several tests."""
    work = tmp_path_factory.mktemp("forum-crawl")
    mock_site.reset_hits()
    feed = work / "feed.jsonl"
    result = run_crawl(site_files["forum"], "-o", str(feed), "--model", "lexicon", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "work": work,
        "feed": feed,
        "items": read_feed(feed),
        "hits": dict(mock_site.hits),
        "stderr": result.stderr,
    }
