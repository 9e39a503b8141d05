"""The item every jingwang spider yields: one page, reduced to the text that gets screened.

Field names follow the `jingwang scan` output (``id``, ``decision``, ``labels``, ``scores``,
``evidence``) plus what a reviewer needs to find the page again (``url``, ``title``,
``crawled_at``). The screening fields stay None until the screening pipeline fills them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PageItem", "FEED_FIELDS"]


@dataclass
class PageItem:
    """One crawled detail page."""

    url: str
    site: str
    title: str
    text: str
    """What is screened: the title line, then the clean body text (evidence offsets index it)."""
    crawled_at: str
    """ISO 8601 UTC time the page was fetched."""
    author: str | None = None
    posted_at: str | None = None
    """ISO 8601 when the page's own date could be parsed, else None (raw value in posted_raw)."""
    posted_raw: str | None = None
    image_urls: list[str] = field(default_factory=list)
    encoding: str | None = None
    id: str = ""
    """External id: site and URL fingerprint (stable across versions; see ``version``)."""
    url_fp: str = ""
    content_hash: str = ""
    version: int = 1
    near_duplicate_of: str | None = None
    """URL of an earlier page with nearly the same text (a repost), if any."""
    truncated: bool = False
    """The page's text was longer than ``JINGWANG_MAX_TEXT_CHARS``: ``text`` is its start."""
    original_chars: int | None = None
    """Length of the page's full text when ``truncated``, else None."""
    decision: str | None = None
    labels: list[str] | None = None
    scores: dict[str, float] | None = None
    evidence: list[dict[str, Any]] | None = None
    etag: str | None = field(default=None, repr=False)
    """The response's ETag and Last-Modified, kept for a conditional GET next crawl."""
    last_modified: str | None = field(default=None, repr=False)
    state_record: Any = field(default=None, repr=False, compare=False)
    """The crawl-state record to commit once a sink holds the item (not exported)."""


FEED_FIELDS: list[str] = [
    "id", "decision", "labels", "scores", "evidence", "text", "url", "title", "crawled_at",
    "posted_at", "author", "image_urls", "site", "version", "content_hash", "near_duplicate_of",
    "encoding", "truncated", "original_chars",
]
"""Column order of the JSON Lines feed: the scan format first, then the crawl metadata."""
