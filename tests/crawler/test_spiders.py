"""Spider callbacks fed saved pages as `HtmlResponse`, without a network or a reactor."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.crawler import Crawler
from scrapy.http import HtmlResponse, Request, XmlResponse
from scrapy.utils.test import get_crawler

from crawler.config import load_site
from crawler.items import PageItem
from crawler.spiders.feed import FeedSpider
from crawler.spiders.site import SiteSpider
from tests.crawler.site.mock_site import MockSite, write_site_files

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_site_files(BASE, tmp_path_factory.mktemp("sites"))


@pytest.fixture(scope="module")
def offline() -> MockSite:
    """The mock site's router, called directly (its server is never started)."""
    site = MockSite()
    site._server.server_address = ("127.0.0.1", 8000)
    return site


def response(site: MockSite, path: str, cls: type = HtmlResponse) -> HtmlResponse:
    status, headers, body = site.respond(path)
    return cls(BASE + path, status=status, headers=headers, body=body, request=Request(BASE + path))


def spider_for(cls: type, site_file: Path) -> SiteSpider:
    crawler = get_crawler(cls)
    return cls.from_crawler(crawler, site=str(site_file))


def test_list_page_yields_detail_links_and_the_next_page(sites: dict[str, Path], offline: MockSite) -> None:
    spider = spider_for(SiteSpider, sites["forum"])
    assert spider.name == "mock-forum"
    requests = list(spider.parse_list(response(offline, "/forum/list-1.html")))
    urls = [r.url for r in requests]
    assert urls[:4] == [
        f"{BASE}/private/secret.html", f"{BASE}/errors/500.html", f"{BASE}/loop/a.html",
        f"{BASE}/forum/thread-1.html",
    ]
    assert urls[-1] == f"{BASE}/forum/list-2.html"
    assert requests[-1].callback == spider.parse_list
    assert requests[0].callback == spider.parse_detail
    assert not any(r.dont_filter for r in requests)


def test_last_list_page_has_no_next(sites: dict[str, Path], offline: MockSite) -> None:
    spider = spider_for(SiteSpider, sites["forum"])
    urls = [r.url for r in spider.parse_list(response(offline, "/forum/list-3.html"))]
    assert not any("list-" in url for url in urls)


def test_max_pages_caps_scheduling(sites: dict[str, Path], offline: MockSite, tmp_path: Path) -> None:
    text = sites["forum"].read_text().replace("max_pages: 200", "max_pages: 3")
    small = tmp_path / "small.yaml"
    small.write_text(text)
    spider = spider_for(SiteSpider, small)
    assert len(list(spider.parse_list(response(offline, "/forum/list-1.html")))) == 3


def test_depth_limit_comes_from_the_site_file(sites: dict[str, Path]) -> None:
    crawler = Crawler(SiteSpider, {})  # settings not frozen yet, as in a real crawl
    SiteSpider.from_crawler(crawler, site=str(sites["forum"]))
    assert crawler.settings.getint("DEPTH_LIMIT") == 6


def test_detail_page_becomes_an_item(sites: dict[str, Path], offline: MockSite) -> None:
    spider = spider_for(SiteSpider, sites["forum"])
    [item] = list(spider.parse_detail(response(offline, "/forum/thread-9.html")))
    assert isinstance(item, PageItem)
    assert item.title == "招聘育儿嫂 月嫂 有经验优先"
    assert item.text.startswith("招聘育儿嫂 月嫂 有经验优先\n家政公司长期招聘育儿嫂")
    assert item.author == "家政公司"
    assert item.posted_at == "2026-11-20T10:31:00+08:00"
    assert item.image_urls == [f"{BASE}/img/thread-9.jpg"]
    assert item.decision is None and item.url_fp


def test_text_over_the_limit_is_cut_and_marked(sites: dict[str, Path], offline: MockSite) -> None:
    spider = spider_for(SiteSpider, sites["forum"])
    [whole] = list(spider.parse_detail(response(offline, "/forum/thread-9.html")))
    assert not whole.truncated and whole.original_chars is None
    spider.max_chars = 12  # JINGWANG_MAX_TEXT_CHARS
    [cut] = list(spider.parse_detail(response(offline, "/forum/thread-9.html")))
    assert cut.text == whole.text[:12]
    assert cut.truncated is True and cut.original_chars == len(whole.text)


def test_empty_body_selector_falls_back_to_the_page(sites: dict[str, Path], tmp_path: Path) -> None:
    text = sites["forum"].read_text().replace('body: "div.post div.content"', 'body: "div.gone"')
    stale = tmp_path / "stale.yaml"
    stale.write_text(text)
    spider = spider_for(SiteSpider, stale)
    page = HtmlResponse(f"{BASE}/x", body='<html><body><h1 class="title">标题</h1><p>正文</p></body></html>'.encode(), encoding="utf-8")
    [item] = list(spider.parse_detail(page))
    assert item.text == "标题\n正文"
    assert spider.crawler.stats.get_value("jingwang/body_selector_empty") == 1


def test_feed_spider_reads_sitemaps_and_rss(sites: dict[str, Path], offline: MockSite) -> None:
    spider = spider_for(FeedSpider, sites["feed"])
    sitemap = [r.url for r in spider.parse_feed(response(offline, "/sitemap.xml", XmlResponse))]
    assert sitemap == [BASE + p for p in MockSite.classifieds_detail_paths()]
    rss = [r.url for r in spider.parse_feed(response(offline, "/rss.xml", XmlResponse))]
    assert rss == [f"{BASE}/forum/thread-{n}.html" for n in range(1, 7)]


def test_sitemap_index_is_followed(sites: dict[str, Path]) -> None:
    spider = spider_for(FeedSpider, sites["feed"])
    index = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{BASE}/sitemap-2.xml</loc></sitemap></sitemapindex>"
    )
    [request] = list(spider.parse_feed(XmlResponse(f"{BASE}/sitemap.xml", body=index.encode())))
    assert request.url == f"{BASE}/sitemap-2.xml" and request.callback == spider.parse_feed


def test_spider_refuses_a_site_file_of_the_other_kind(sites: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="run with the 'feed' spider"):
        spider_for(SiteSpider, sites["feed"])
    with pytest.raises(ValueError, match="needs a site file"):
        SiteSpider()
    assert load_site(sites["feed"]).kind == "feed"
