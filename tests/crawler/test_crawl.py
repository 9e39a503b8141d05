"""End-to-end crawls of the mock site: politeness, encodings, screening, recrawl, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from models.scorer import Screener
from tests.crawler.conftest import REPO, by_path, crawl_command, read_feed, run_crawl
from tests.crawler.site import pages
from tests.crawler.site.mock_site import MockSite, write_site_files

FORUM_ADS = [f"/forum/{p.slug}.html" for p in pages.FORUM_POSTS if p.flagged] + [
    "/forum/thread-gbk.html", "/forum/post-big5.html", "/forum/huge.html",
]
# Look-alike negatives any sound scorer passes (pets, baby goods, jobs, news, procedures).
FORUM_CLEAR_NEGATIVES = [
    f"/forum/thread-{n}.html" for n in (7, 8, 9, 10, 11, 12, 13, 15)
] + ["/forum/changing.html"]


def test_every_allowed_page_is_fetched_once_and_disallowed_ones_never(forum_crawl: dict[str, Any]) -> None:
    hits = forum_crawl["hits"]
    for path in MockSite.forum_detail_paths() + [f"/forum/list-{n}.html" for n in (1, 2, 3)]:
        assert hits.get(path) == 1, (path, hits.get(path))
    assert hits.get("/robots.txt") == 1
    assert "/private/secret.html" not in hits
    # The redirect loop ends at the dupefilter: each hop once.
    assert hits.get("/loop/a.html") == 1
    assert hits.get("/loop/b.html") == 1


def test_a_500_page_is_retried_then_counted_as_an_error(forum_crawl: dict[str, Any]) -> None:
    assert forum_crawl["hits"]["/errors/500.html"] == 3  # RETRY_TIMES = 2
    assert "/errors/500.html" not in by_path(forum_crawl["items"])
    assert "1 errors" in forum_crawl["stderr"]


def test_flagged_ads_arrive_in_the_feed_with_url_title_and_crawl_time(forum_crawl: dict[str, Any]) -> None:
    items = by_path(forum_crawl["items"])
    assert sorted(items) == sorted(MockSite.forum_detail_paths())
    for path in FORUM_ADS:
        item = items[path]
        assert item["decision"] in ("review", "block"), (path, item["text"])
        assert item["labels"] and item["evidence"]
        assert item["url"].endswith(path) and item["title"] and item["crawled_at"]
    for path in FORUM_CLEAR_NEGATIVES:
        assert items[path]["decision"] == "pass", (path, items[path]["labels"])


def test_feed_matches_jingwang_scan_on_the_same_text(forum_crawl: dict[str, Any]) -> None:
    screener = Screener.load("lexicon")
    items = forum_crawl["items"]
    results = screener.screen([item["text"] for item in items])
    for item, result in zip(items, results, strict=True):
        expected = result.to_dict()
        assert item["decision"] == expected["decision"]
        assert item["labels"] == expected["labels"]
        for evidence in item["evidence"]:
            assert item["text"][evidence["start"] : evidence["end"]] == evidence["text"]


def test_site_chrome_is_not_screened(forum_crawl: dict[str, Any]) -> None:
    # Every page's <script>, <nav> and footer name 代孕/卖肾/拐卖儿童; the pet post must not.
    text = by_path(forum_crawl["items"])["/forum/thread-7.html"]["text"]
    assert "代孕" not in text and "卖肾" not in text and "拐卖" not in text and "track(" not in text
    assert text.startswith("送养小猫 三个月大 已驱虫\n")


def test_gb18030_and_big5_pages_decode(forum_crawl: dict[str, Any]) -> None:
    items = by_path(forum_crawl["items"])
    gbk = items["/forum/thread-gbk.html"]
    assert gbk["encoding"] == "gb18030"
    assert "𠮷先生" in gbk["text"]  # outside GBK: only a GB18030 decoder gets it right
    assert gbk["author"] == "𠮷先生"
    big5 = items["/forum/post-big5.html"]
    assert big5["encoding"].startswith("big5")
    assert "出售滿月男嬰" in big5["text"]


def test_detail_fields_and_near_duplicates(forum_crawl: dict[str, Any]) -> None:
    items = by_path(forum_crawl["items"])
    post = items["/forum/thread-5.html"]
    assert post["author"] == "健康顾问"
    assert post["posted_at"] == "2026-11-20T10:31:00+08:00"
    assert post["image_urls"] == [post["url"].split("/forum/")[0] + "/img/thread-5.jpg"]
    assert items["/forum/thread-16.html"]["near_duplicate_of"].endswith("/forum/thread-1.html")
    assert items["/forum/thread-1.html"]["near_duplicate_of"] is None
    assert items["/forum/thread-2.html"]["near_duplicate_of"] is None


def test_very_large_page_is_crawled_and_its_text_capped(forum_crawl: dict[str, Any]) -> None:
    huge = by_path(forum_crawl["items"])["/forum/huge.html"]
    assert huge["decision"] == "block"
    assert len(huge["text"]) <= 20000


def test_summary_counts_pages_items_flags_and_errors(forum_crawl: dict[str, Any]) -> None:
    stderr = forum_crawl["stderr"]
    assert "crawl summary for mock-forum (finished)" in stderr
    summary_line = next(line for line in stderr.splitlines() if "crawl summary for" in line)
    assert f"{len(forum_crawl['items'])} items" in summary_line
    assert "surrogacy=" in summary_line and "organ_trade=" in summary_line
    assert "1 near-duplicates" in summary_line


def test_classifieds_with_xpath_and_gb18030_via_plain_scrapy_crawl(
    mock_site: MockSite, site_files: dict[str, Path], tmp_path: Path
) -> None:
    feed = tmp_path / "fenlei.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable, "-m", "scrapy", "crawl", "site", "-a", f"site={site_files['classifieds']}",
            "-o", str(feed), "-s", "JINGWANG_MODEL=lexicon", "-s", f"JINGWANG_STATE_DIR={tmp_path / 'state'}",
            "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    items = by_path(read_feed(feed))
    assert sorted(items) == sorted(MockSite.classifieds_detail_paths())
    flagged = {p for p, item in items.items() if item["decision"] != "pass"}
    assert flagged == {f"/fenlei/{p.slug}.html" for p in pages.CLASSIFIEDS if p.flagged}
    assert items["/fenlei/item-2.html"]["text"].startswith("整租两室一厅")
    assert items["/fenlei/item-1.html"]["posted_at"] == "2026-11-20T10:31:00+08:00"
    assert items["/fenlei/item-1.html"]["encoding"] == "gb18030"


def test_sitemap_and_rss_spider(mock_site: MockSite, site_files: dict[str, Path], tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    result = run_crawl(site_files["feed"], "-o", str(feed), "--model", "lexicon",
                       "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = MockSite.classifieds_detail_paths() + [
        f"/forum/{p.slug}.html" for p in pages.FORUM_POSTS[:6]
    ]
    items = by_path(read_feed(feed))
    assert sorted(items) == sorted(expected)
    assert all(items[f"/forum/{p.slug}.html"]["decision"] != "pass" for p in pages.FORUM_POSTS[:6])


@pytest.mark.slow
def test_recrawl_skips_unchanged_pages_and_rescreens_the_changed_one(tmp_path: Path) -> None:
    with MockSite() as site:
        files = write_site_files(site.base, tmp_path / "sites")
        state = ["--model", "lexicon", "--state-dir", str(tmp_path / "state")]
        first = run_crawl(files["forum"], "-o", str(tmp_path / "one.jsonl"), *state, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        site.version = 2
        site.reset_hits()
        second = run_crawl(files["forum"], "-o", str(tmp_path / "two.jsonl"), *state, cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        hits = dict(site.hits)
        not_modified = dict(site.not_modified)
    before = by_path(read_feed(tmp_path / "one.jsonl"))
    after = read_feed(tmp_path / "two.jsonl")
    # Fingerprints expired with the first crawl: the recrawl asked for every page again,
    # conditionally: the server answered 304 for all but the changed one...
    assert all(hits.get(path) == 1 for path in MockSite.forum_detail_paths())
    assert set(not_modified) == set(MockSite.forum_detail_paths()) - {"/forum/changing.html"}
    # ...and only the changed page is a new item, screened again as version 2.
    assert [item["url"].rsplit("/", 1)[1] for item in after] == ["changing.html"]
    changed = after[0]
    assert changed["version"] == 2 and before["/forum/changing.html"]["version"] == 1
    assert changed["id"] == before["/forum/changing.html"]["id"]
    assert before["/forum/changing.html"]["decision"] == "pass"
    assert changed["decision"] == "block" and changed["labels"] == ["organ_trade"]
    assert f"{len(MockSite.forum_detail_paths()) - 1} unchanged" in second.stderr


@pytest.mark.slow
def test_a_killed_crawl_resumes_without_fetching_a_page_twice(tmp_path: Path) -> None:
    with MockSite(delay=0.25) as site:
        files = write_site_files(site.base, tmp_path / "sites")
        feed = tmp_path / "feed.jsonl"
        args = ["-o", str(feed), "--model", "lexicon", "--jobdir", str(tmp_path / "job"),
                "--state-dir", str(tmp_path / "state"), "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        first = subprocess.Popen(
            crawl_command(files["forum"], *args), cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60
        while sum(site.hits[p] for p in MockSite.forum_detail_paths()) < 5:
            assert time.monotonic() < deadline and first.poll() is None, "crawl ended too early"
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)  # what a supervisor's stop sends
        _, stderr = first.communicate(timeout=60)
        assert "(shutdown)" in stderr
        done_first = len(read_feed(feed))
        assert 0 < done_first < len(MockSite.forum_detail_paths())
        second = run_crawl(files["forum"], *args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "Resuming crawl" in second.stderr
        hits = dict(site.hits)
        for path in MockSite.forum_detail_paths() + [f"/forum/list-{n}.html" for n in (1, 2, 3)]:
            assert hits.get(path) == 1, (path, hits.get(path))
        items = read_feed(feed)
        assert sorted(by_path(items)) == sorted(MockSite.forum_detail_paths())
        assert len(items) == len(MockSite.forum_detail_paths())

        # The job finished, so its fingerprints expired: the next crawl with the same
        # JOBDIR fetches every page again and screens the one that changed.
        site.version = 2
        site.delay = 0
        third = run_crawl(files["forum"], *args, cwd=tmp_path)
        assert third.returncode == 0, third.stderr[-3000:]
        assert all(site.hits[path] == 2 for path in MockSite.forum_detail_paths())
    newest = read_feed(feed)[len(items):]
    assert [item["url"].rsplit("/", 1)[1] for item in newest] == ["changing.html"]


@pytest.mark.slow
def test_a_crawl_killed_outright_loses_no_item_and_refetches_no_screened_page(tmp_path: Path) -> None:
    with MockSite(delay=0.25) as site:
        files = write_site_files(site.base, tmp_path / "sites")
        feed = tmp_path / "feed.jsonl"
        args = ["-o", str(feed), "--model", "lexicon", "--jobdir", str(tmp_path / "job"),
                "--state-dir", str(tmp_path / "state"), "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        first = subprocess.Popen(
            crawl_command(files["forum"], *args), cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(read_feed(feed)) < 4:
            assert time.monotonic() < deadline and first.poll() is None, "crawl ended too early"
            time.sleep(0.05)
        first.kill()  # SIGKILL: no chance to save Scrapy's queue
        first.wait(timeout=30)
        done_before = {urlparse(item["url"]).path for item in read_feed(feed)}
        assert 4 <= len(done_before) < len(MockSite.forum_detail_paths())
        second = run_crawl(files["forum"], *args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        hits = dict(site.hits)
    for path in done_before:
        assert hits[path] == 1, (path, hits[path])
    items = read_feed(feed)
    assert sorted(by_path(items)) == sorted(MockSite.forum_detail_paths())
    assert len(items) == len(MockSite.forum_detail_paths())


def test_bad_site_file_exits_2_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstart_urls: [http://127.0.0.1/]\nlist: {links: a}\ndetail: {titel: h1, body: p}\n")
    result = run_crawl(bad, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "detail.titel: unknown key; did you mean 'title'?" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_summary_json(tmp_path: Path, site_files: dict[str, Path]) -> None:
    out = tmp_path / "summary.json"
    result = run_crawl(
        site_files["classifieds"], "-o", str(tmp_path / "f.jsonl"), "--model", "lexicon",
        "--state-dir", str(tmp_path / "state"), "-s", f"JINGWANG_SUMMARY_PATH={out}", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    flagged = [p for p in pages.CLASSIFIEDS if p.flagged]
    assert summary["items"] == len(pages.CLASSIFIEDS)
    assert summary["flagged"] == len(flagged)
    assert summary["pages"] == len(pages.CLASSIFIEDS) + 2 + 1  # details, 2 list pages, robots
    assert summary["finish_reason"] == "finished"
    assert sum(summary["decisions"].values()) == len(pages.CLASSIFIEDS)


@pytest.mark.parametrize("flag", ["--api", "--redis"])
def test_bad_sink_options_exit_2(tmp_path: Path, site_files: dict[str, Path], flag: str) -> None:
    result = run_crawl(site_files["forum"], flag, "ftp://nowhere", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
