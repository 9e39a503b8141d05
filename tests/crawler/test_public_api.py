"""The crawler's public surface, pinned: changing it should be a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import crawler.config
import crawler.dedup
import crawler.pipelines
import crawler.run
from crawler.spiders.feed import FeedSpider
from crawler.spiders.site import SiteSpider


def test_exported_members() -> None:
    assert sorted(crawler.run.__all__) == ["CrawlOptions", "build_settings", "crawl"]
    assert sorted(crawler.config.__all__) == ["Selector", "SiteConfig", "SiteConfigError", "load_site", "parse_site"]
    assert sorted(crawler.pipelines.__all__) == [
        "ApiSinkPipeline", "DedupPipeline", "FeedPipeline", "ScreeningPipeline", "StatePipeline",
        "api_payload", "load_screener",
    ]
    assert "PageState" in crawler.dedup.__all__
    assert (SiteSpider.name, FeedSpider.name) == ("site", "feed")


def test_importing_the_cli_does_not_import_scrapy() -> None:
    code = "import sys, jingwang.cli; print('scrapy' in sys.modules, 'crawler.run' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
