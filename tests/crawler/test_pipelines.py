"""Pipelines wired with `scrapy.utils.test.get_crawler`: dedup, versions, screening."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.test import get_crawler

from crawler.dedup import url_fingerprint
from crawler.items import PageItem
from crawler.pipelines import (
    ApiSinkPipeline,
    DedupPipeline,
    FeedPipeline,
    ScreeningPipeline,
    StatePipeline,
    api_payload,
)
from crawler.spiders.site import SiteSpider
from crawler.state import close_state
from tests.crawler.site.mock_site import write_site_files


def make_item(url: str, text: str) -> PageItem:
    return PageItem(url=url, site="mock-forum", title=text.split("\n")[0], text=text,
                    crawled_at="2026-11-29T08:00:00+00:00", url_fp=url_fingerprint(url))


@pytest.fixture
def crawler(tmp_path: Path) -> Iterator[Crawler]:
    sites = write_site_files("http://127.0.0.1:8000", tmp_path / "sites")
    crawler = get_crawler(SiteSpider, {"JINGWANG_STATE_DIR": str(tmp_path / "state"),
                                       "JINGWANG_MODEL": "lexicon"})
    crawler.spider = SiteSpider.from_crawler(crawler, site=str(sites["forum"]))
    yield crawler
    close_state(crawler)


class Chain:
    """Dedup, then the state commit, as ITEM_PIPELINES runs them without a sink."""

    def __init__(self, crawler: Crawler) -> None:
        self.dedup = DedupPipeline.from_crawler(crawler)
        self.commit = StatePipeline.from_crawler(crawler)
        self.dedup.open_spider()
        self.commit.open_spider()

    def process_item(self, item: PageItem) -> PageItem:
        return self.commit.process_item(self.dedup.process_item(item))


def test_dedup_drops_unchanged_and_versions_changed_pages(crawler: Crawler) -> None:
    pipeline = Chain(crawler)
    first = pipeline.process_item(make_item("http://a.cn/1", "出售婴儿车\n九成新"))
    assert first.version == 1 and first.id.startswith("mock-forum:")
    with pytest.raises(DropItem, match="unchanged since the last crawl"):
        pipeline.process_item(make_item("http://a.cn/1", "出售婴儿车 \n 九成新"))
    second = pipeline.process_item(make_item("http://a.cn/1", "出售婴儿车\n八成新，便宜卖"))
    assert second.version == 2 and second.id == first.id
    stats = crawler.stats
    assert stats.get_value("jingwang/unchanged") == 1
    assert stats.get_value("jingwang/changed") == 1


def test_dedup_marks_or_drops_near_duplicates(crawler: Crawler) -> None:
    ad = "高价收购肾源，十八到四十岁身体健康者优先，配型快，卖肾一个报酬三十万，手术安排在私立医院，联系 137-0000-0003"
    pipeline = Chain(crawler)
    pipeline.process_item(make_item("http://a.cn/1", ad))
    repost = pipeline.process_item(make_item("http://a.cn/2", ad.replace("0003", "0008")))
    assert repost.near_duplicate_of == "http://a.cn/1"
    pipeline.dedup.near_mode = "drop"
    with pytest.raises(DropItem, match="near-duplicate of http://a.cn/1"):
        pipeline.process_item(make_item("http://a.cn/3", ad.replace("0003", "0007")))
    with pytest.raises(ValueError, match="JINGWANG_NEAR_DUPLICATES"):
        DedupPipeline(crawler, "keep-all")


@pytest.mark.parametrize("batch", [1, 32])
def test_screening_fills_the_scan_fields_and_counts_flags(crawler: Crawler, batch: int) -> None:
    pipeline = ScreeningPipeline(crawler, "lexicon", batch_size=batch, max_wait=0.01)
    pipeline.open_spider()
    texts = ["代孕包成功，包男孩，微信 abc_test123", "送养小猫，三个月大，已驱虫", "出售婴儿车，九成新"]

    async def screen_concurrently() -> list[PageItem]:
        items = [make_item(f"http://a.cn/{i}", text) for i, text in enumerate(texts)]
        return list(await asyncio.gather(*(pipeline.process_item(item) for item in items)))

    ad, pet, pram = asyncio.run(screen_concurrently())
    assert ad.decision in ("review", "block") and "surrogacy" in ad.labels
    assert set(ad.scores) >= {"surrogacy", "organ_trade"} and ad.evidence
    assert pet.decision == pram.decision == "pass" and pet.labels == []
    assert crawler.stats.get_value("jingwang/flagged/surrogacy") == 1
    assert crawler.stats.get_value("jingwang/decision/pass") == 2
    with pytest.raises(ValueError, match="JINGWANG_SCREEN_BATCH"):
        ScreeningPipeline(crawler, "lexicon", batch_size=0, max_wait=0.01)


def test_state_is_written_only_once_an_item_reaches_a_sink(crawler: Crawler) -> None:
    dedup = DedupPipeline.from_crawler(crawler)
    dedup.open_spider()
    item = dedup.process_item(make_item("http://a.cn/1", "出售婴儿车\n九成新"))
    # Lost before any sink took it (a kill, a failed delivery): the next crawl sees it as new.
    again = dedup.process_item(make_item("http://a.cn/1", "出售婴儿车\n九成新"))
    assert again.version == 1 and item.state_record is not None
    with pytest.raises(NotConfigured):  # the API sink records delivered pages itself
        StatePipeline.from_crawler(get_crawler(settings_dict={"JINGWANG_API_URL": "http://x"}))


def test_feed_lines_are_flushed_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    feed = FeedPipeline.from_crawler(get_crawler(settings_dict={"JINGWANG_FEED": str(path)}))
    feed.open_spider()
    feed.process_item(make_item("http://a.cn/1", "标题\n正文"))
    line = path.read_text(encoding="utf-8")  # before close_spider
    assert line.endswith("\n") and '"url": "http://a.cn/1"' in line and "state_record" not in line
    feed.close_spider()


def test_sinks_are_optional() -> None:
    with pytest.raises(NotConfigured):
        ScreeningPipeline.from_crawler(get_crawler(settings_dict={"JINGWANG_SCREEN": False}))
    with pytest.raises(NotConfigured):
        ApiSinkPipeline.from_crawler(get_crawler(settings_dict={"JINGWANG_API_URL": ""}))
    with pytest.raises(NotConfigured):
        FeedPipeline.from_crawler(get_crawler(settings_dict={"JINGWANG_FEED": ""}))


def test_api_payload_matches_the_service_schema() -> None:
    serve_schemas = pytest.importorskip("serve.schemas")
    item = make_item("http://a.cn/1", "标题\n正文")
    item.id, item.version, item.posted_at = "mock-forum:abc", 2, "2026-11-20T10:31:00+08:00"
    payload = api_payload(item)
    assert payload["source"] == "crawler" and payload["url"] == "http://a.cn/1"
    assert payload["metadata"]["version"] == 2 and payload["metadata"]["title"] == "标题"
    serve_schemas.ScreenBatchIn.model_validate({"items": [payload]})
