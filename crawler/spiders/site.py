"""The list-page spider: start URLs -> list pages (with pagination) -> detail pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scrapy.http import Response, TextResponse

from crawler.spiders.base import SiteFileSpider


class SiteSpider(SiteFileSpider):
    """``scrapy crawl site -a site=crawler/sites/example-forum.yaml``."""

    name = "site"
    expected_kind = "list"

    def first_callback(self) -> Any:
        return self.parse_list

    def parse_list(self, response: Response) -> Iterator[Any]:
        """Follow the detail links and the next-page link of a list page."""
        if not isinstance(response, TextResponse):
            return
        assert self.site.links is not None  # validated: kind=list always has list.links
        for href in self.site.links.extract(response):
            url = response.urljoin(href.strip())
            if self.site.is_detail_url(url):
                request = self.follow(url, callback=self.parse_detail)
                if request is not None:
                    yield request
        if self.site.next_page is not None:
            href = self.site.next_page.first(response)
            if href:
                request = self.follow(response.urljoin(href), callback=self.parse_list)
                if request is not None:
                    yield request
