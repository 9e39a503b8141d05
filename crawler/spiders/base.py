"""What both generic spiders share: loading the site file, limits, detail pages, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler.config import SiteConfig, load_site
from crawler.dedup import url_fingerprint
from crawler.extract import extract_page
from crawler.items import PageItem
from crawler.state import state_for


class SiteFileSpider(scrapy.Spider):
    """Base of the generic spiders; pass the site file as ``-a site=PATH.yaml``.

    The instance takes the site's name, so logs, stats and the Redis keys of a distributed
    crawl (``%(spider)s``) are per site, not per spider class.
    """

    site: SiteConfig
    expected_kind = "list"
    max_chars = 20000  # JINGWANG_MAX_TEXT_CHARS, read in from_crawler

    def __init__(self, site: str | SiteConfig | None = None, **kwargs: Any) -> None:
        if site is None:
            raise ValueError(f"spider {self.name!r} needs a site file: -a site=PATH.yaml")
        config = site if isinstance(site, SiteConfig) else load_site(site)
        if config.kind != self.expected_kind:
            raise ValueError(
                f"{config.source}: kind {config.kind!r} site files run with the "
                f"{config.kind!r} spider, not {self.name!r}"
            )
        super().__init__(name=config.name, **kwargs)
        self.site = config
        self.allowed_domains = list(config.allowed_domains)
        self._scheduled = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SiteFileSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # Settings are still unfrozen here, so the site's depth limit becomes DEPTH_LIMIT.
        if spider.site.max_depth is not None and not crawler.settings.frozen:
            crawler.settings.set("DEPTH_LIMIT", spider.site.max_depth, priority="spider")
        spider.max_chars = crawler.settings.getint("JINGWANG_MAX_TEXT_CHARS", 20000)
        return spider

    async def start(self) -> AsyncIterator[Any]:
        for url in self.start_urls_for_site():
            # Filterable on purpose: a resumed (JOBDIR) or second distributed node must not
            # fetch the start pages again.
            request = self.follow(url, callback=self.first_callback())
            if request is not None:
                yield request

    def start_urls_for_site(self) -> tuple[str, ...]:
        return self.site.start_urls

    def first_callback(self) -> Any:
        raise NotImplementedError

    def follow(self, url: str, callback: Any, **kwargs: Any) -> Request | None:
        """A request within the site's page budget, or None once max_pages is spent."""
        if self.site.max_pages is not None and self._scheduled >= self.site.max_pages:
            self.crawler.stats.inc_value("jingwang/max_pages_skipped")
            return None
        self._scheduled += 1
        meta = {"jingwang_detail": True} if callback == self.parse_detail else {}
        return Request(url, callback=callback, errback=self.on_error, meta=meta, **kwargs)

    def parse_detail(self, response: Response) -> Iterator[PageItem]:
        """A detail page becomes one item (non-HTML responses are counted and skipped)."""
        if response.status == 304:
            # Not modified since the last crawl (`ConditionalGetMiddleware` asked).
            self.crawler.stats.inc_value("jingwang/not_modified")
            self.crawler.stats.inc_value("jingwang/unchanged")
            state = state_for(self.crawler)
            record = state.get(url_fingerprint(response.url))
            if record is not None:
                record.last_seen = time.time()
                state.put(record)
            return
        if not isinstance(response, TextResponse):
            self.crawler.stats.inc_value("jingwang/not_text")
            return
        item, fallback = extract_page(response, self.site, max_chars=self.max_chars)
        if fallback:
            self.crawler.stats.inc_value("jingwang/body_selector_empty")
            self.logger.warning("detail.body matched nothing on %s; using the whole page", response.url)
        yield item

    def on_error(self, failure: Failure) -> None:
        """Count and log a request that failed for good (after retries).

        Requests skipped on purpose (robots.txt, offsite, size limits) are counted apart:
        they are the crawler being polite, not the site failing.
        """
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        if failure.check(IgnoreRequest) and not failure.check(HttpError):
            self.crawler.stats.inc_value("jingwang/ignored_requests")
            self.logger.info("skipped %s: %s", url, failure.getErrorMessage())
            return
        self.crawler.stats.inc_value("jingwang/request_errors")
        self.logger.warning("failed %s: %s", url, failure.getErrorMessage())
