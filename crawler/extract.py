"""Turn a detail-page response into a `PageItem` using a site file's selectors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from scrapy.http import TextResponse

from crawler.config import SiteConfig
from crawler.dedup import url_fingerprint
from crawler.items import PageItem
from crawler.text import collapse_whitespace, html_to_text

__all__ = ["extract_page", "parse_posted_at"]

# Chinese sites print local time without a zone; China Standard Time is the safe reading.
_CST = timezone(timedelta(hours=8))
_DATE_RE = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{1,2})(?:\s*[:：分]\s*(?P<S>\d{1,2}))?)?"
)


def parse_posted_at(raw: str | None) -> str | None:
    """ISO 8601 for dates like '2026-11-20 10:31', '2026/11/20', '2026年11月20日 10时31分'."""
    if not raw:
        return None
    match = _DATE_RE.search(raw)
    if not match:
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        value = datetime(
            parts["y"], parts["m"], parts["d"],
            parts.get("H", 0), parts.get("M", 0), parts.get("S", 0), tzinfo=_CST,
        )
    except ValueError:
        return None
    return value.isoformat()


def extract_page(
    response: TextResponse, site: SiteConfig, *, max_chars: int
) -> tuple[PageItem, bool]:
    """Apply the site's detail selectors.

    Returns the item and whether the body selector matched nothing, in which case the whole
    page's clean text stands in (and the caller counts it: such a selector is usually stale).
    A text over ``max_chars`` is cut to it, and the item says so (``truncated``,
    ``original_chars``), so that a reviewer knows the stored text is partial.
    """
    title = site.title.first(response) or collapse_whitespace(
        response.xpath("//title/text()").get() or ""
    )
    body = html_to_text(site.body.extract(response))
    fallback = not body
    if fallback:
        body = html_to_text(response.xpath("//body").getall())
    title = collapse_whitespace(title)
    text = f"{title}\n{body}" if title and not body.startswith(title) else body
    posted_raw = site.posted_at.first(response) if site.posted_at else None
    images = [response.urljoin(u) for u in site.images.extract(response)] if site.images else []
    truncated = len(text) > max_chars
    item = PageItem(
        url=response.url,
        site=site.name,
        title=title,
        text=text[:max_chars],
        truncated=truncated,
        original_chars=len(text) if truncated else None,
        crawled_at=datetime.now(UTC).isoformat(timespec="seconds"),
        author=collapse_whitespace(site.author.first(response) or "") or None
        if site.author
        else None,
        posted_at=parse_posted_at(posted_raw),
        posted_raw=posted_raw,
        image_urls=list(dict.fromkeys(images)),
        encoding=response.encoding,
        url_fp=url_fingerprint(response.url),
        etag=_header(response, b"ETag"),
        last_modified=_header(response, b"Last-Modified"),
    )
    return item, fallback


def _header(response: TextResponse, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
