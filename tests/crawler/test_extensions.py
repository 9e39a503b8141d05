"""Progress lines and the end-of-crawl summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from scrapy.utils.test import get_crawler

from crawler.extensions import CrawlSummary, summarize


def test_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    crawler = get_crawler()
    extension = CrawlSummary.from_crawler(crawler)
    for key, value in {"response_received_count": 40, "item_scraped_count": 30,
                       "jingwang/flagged": 7, "jingwang/unchanged": 3, "jingwang/request_errors": 1}.items():
        crawler.stats.set_value(key, value)
    with caplog.at_level(logging.INFO, logger="crawler.extensions"):
        extension.log_progress()
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("progress: 40 pages (")
    assert message.endswith("30 items, 7 flagged, 3 unchanged, 1 errors")


def test_summary_counts_flags_per_label_and_errors() -> None:
    stats = {
        "response_received_count": 50, "item_scraped_count": 40, "jingwang/flagged": 5,
        "jingwang/flagged/surrogacy": 3, "jingwang/flagged/organ_trade": 2,
        "jingwang/decision/block": 4, "jingwang/decision/review": 1, "jingwang/decision/pass": 35,
        "jingwang/request_errors": 2, "spider_exceptions/count": 1, "jingwang/unchanged": 6,
        "jingwang/api/dead_lettered": 1,
    }
    summary = summarize(stats, site="s", elapsed=10.0, reason="finished")
    assert summary["flagged_by_label"] == {"organ_trade": 2, "surrogacy": 3}
    assert summary["decisions"] == {"block": 4, "pass": 35, "review": 1}
    assert (summary["pages"], summary["items"], summary["errors"]) == (50, 40, 3)
    assert summary["pages_per_s"] == 5.0 and summary["api_dead_lettered"] == 1


def test_summary_is_logged_and_written_at_the_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "summary.json"
    crawler = get_crawler(settings_dict={"JINGWANG_SUMMARY_PATH": str(path), "JINGWANG_PROGRESS_INTERVAL": 0})
    extension = CrawlSummary.from_crawler(crawler)
    crawler.stats.set_value("response_received_count", 3)
    crawler.stats.set_value("jingwang/api/rate_limited", 2)

    class Spider:
        name = "mock-site"

    with caplog.at_level(logging.INFO, logger="crawler.extensions"):
        extension.spider_closed(Spider(), "finished")
    assert "crawl summary for mock-site (finished): 3 pages" in caplog.text
    assert "0 truncated, 2 rate-limited (429)," in caplog.text
    assert json.loads(path.read_text())["pages"] == 3
    assert json.loads(path.read_text())["api_rate_limited"] == 2
    assert crawler.stats.get_value("jingwang/summary")["finish_reason"] == "finished"
