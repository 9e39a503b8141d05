"""The sitemap/RSS spider: feed URLs (sitemap, sitemap index, RSS 2.0, Atom) -> detail pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scrapy.http import Response
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

from crawler.spiders.base import SiteFileSpider


class FeedSpider(SiteFileSpider):
    """``scrapy crawl feed -a site=crawler/sites/example-feed.yaml``."""

    name = "feed"
    expected_kind = "feed"

    def start_urls_for_site(self) -> tuple[str, ...]:
        return self.site.feed_urls

    def first_callback(self) -> Any:
        return self.parse_feed

    def parse_feed(self, response: Response) -> Iterator[Any]:
        """Yield detail requests for every entry; follow child sitemaps of an index."""
        body = response.body
        if response.url.endswith(".gz") or body[:2] == b"\x1f\x8b":
            body = gunzip(body, max_size=self.crawler.settings.getint("DOWNLOAD_MAXSIZE"))
        head = body[:2048].lower()
        if b"<urlset" in head or b"<sitemapindex" in head:
            sitemap = Sitemap(body)
            is_index = sitemap.type == "sitemapindex"
            for entry in sitemap:
                url = response.urljoin(entry["loc"])
                if is_index:
                    request = self.follow(url, callback=self.parse_feed)
                elif self.site.is_detail_url(url):
                    request = self.follow(url, callback=self.parse_detail)
                else:
                    continue
                if request is not None:
                    yield request
            return
        selector = response.selector if hasattr(response, "selector") else None
        if selector is None:
            self.crawler.stats.inc_value("jingwang/feed_unreadable")
            return
        selector.remove_namespaces()
        links = selector.xpath("//item/link/text() | //entry/link[not(@rel) or @rel='alternate']/@href")
        for link in links.getall():
            url = response.urljoin(link.strip())
            if self.site.is_detail_url(url):
                request = self.follow(url, callback=self.parse_detail)
                if request is not None:
                    yield request
