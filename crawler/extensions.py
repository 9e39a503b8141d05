"""Crawl-level extensions: progress and summary, fingerprint expiry, distributed idling.

- `CrawlSummary` logs progress every ``JINGWANG_PROGRESS_INTERVAL`` seconds and a summary
  when the crawl ends (pages, items, flagged per label, errors, time); the summary is also
  kept in the stats under ``jingwang/summary`` and, with ``JINGWANG_SUMMARY_PATH``, written
  as JSON.
- `FingerprintExpiry` makes request fingerprints last one crawl, not forever: when a crawl
  *finishes*, the JOBDIR ``requests.seen`` file or the shared Redis dupefilter is cleared,
  so the next crawl refetches and the content hashes (`crawler.dedup`) decide what is new.
  A crawl that was killed keeps them, so its resumption fetches nothing twice. Redis
  fingerprints also carry a TTL (``JINGWANG_FINGERPRINT_TTL``, 7 days) in case a crawl is
  abandoned.
- `RedisIdle` keeps a distributed node alive while other nodes are still busy (they may
  queue more pages), then lets it close after ``JINGWANG_REDIS_IDLE_CLOSE`` idle seconds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider, NotConfigured
from twisted.internet import task

from crawler.state import close_state, is_redis_crawl, redis_prefix

logger = logging.getLogger(__name__)

__all__ = ["CrawlSummary", "FingerprintExpiry", "RedisIdle", "summarize"]


def summarize(stats: dict[str, Any], *, site: str, elapsed: float, reason: str | None) -> dict[str, Any]:
    """The end-of-crawl summary, computed from Scrapy's stats dict."""
    flagged = {
        key.rsplit("/", 1)[1]: value
        for key, value in sorted(stats.items())
        if key.startswith("jingwang/flagged/")
    }
    decisions = {
        key.rsplit("/", 1)[1]: value
        for key, value in sorted(stats.items())
        if key.startswith("jingwang/decision/")
    }
    pages = stats.get("response_received_count", 0)
    return {
        "site": site,
        "finish_reason": reason,
        "pages": pages,
        "items": stats.get("item_scraped_count", 0),
        "unchanged": stats.get("jingwang/unchanged", 0),
        "not_modified": stats.get("jingwang/not_modified", 0),
        "changed": stats.get("jingwang/changed", 0),
        "near_duplicates": stats.get("jingwang/near_duplicates", 0),
        "flagged": stats.get("jingwang/flagged", 0),
        "flagged_by_label": flagged,
        "decisions": decisions,
        "errors": stats.get("jingwang/request_errors", 0) + stats.get("spider_exceptions/count", 0),
        "retries": stats.get("retry/count", 0),
        "robots_forbidden": stats.get("robotstxt/forbidden", 0),
        "api_delivered": stats.get("jingwang/api/delivered", 0),
        "api_dead_lettered": stats.get("jingwang/api/dead_lettered", 0),
        "api_dropped_empty": stats.get("jingwang/api/dropped_empty", 0),
        "api_truncated": stats.get("jingwang/api/truncated", 0),
        "api_rate_limited": stats.get("jingwang/api/rate_limited", 0),
        "elapsed_s": round(elapsed, 2),
        "pages_per_s": round(pages / elapsed, 2) if elapsed > 0 else 0.0,
    }


class CrawlSummary:
    """Progress lines during the crawl and one summary at its end."""

    def __init__(self, crawler: Crawler, interval: float, path: str | None) -> None:
        self.crawler = crawler
        self.interval = interval
        self.path = path
        self.started = time.monotonic()
        self.loop: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlSummary:
        extension = cls(
            crawler,
            crawler.settings.getfloat("JINGWANG_PROGRESS_INTERVAL", 30.0),
            crawler.settings.get("JINGWANG_SUMMARY_PATH"),
        )
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Any) -> None:
        self.started = time.monotonic()
        if self.interval > 0:
            self.loop = task.LoopingCall(self.log_progress)
            self.loop.start(self.interval, now=False)

    def log_progress(self) -> None:
        stats = self.crawler.stats.get_stats()
        elapsed = time.monotonic() - self.started
        pages = stats.get("response_received_count", 0)
        logger.info(
            "progress: %d pages (%.1f/s), %d items, %d flagged, %d unchanged, %d errors",
            pages, pages / elapsed if elapsed else 0.0, stats.get("item_scraped_count", 0),
            stats.get("jingwang/flagged", 0), stats.get("jingwang/unchanged", 0),
            stats.get("jingwang/request_errors", 0),
        )

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        summary = summarize(
            self.crawler.stats.get_stats(),
            site=spider.name,
            elapsed=time.monotonic() - self.started,
            reason=reason,
        )
        self.crawler.stats.set_value("jingwang/summary", summary)
        by_label = ", ".join(f"{k}={v}" for k, v in summary["flagged_by_label"].items()) or "none"
        logger.info(
            "crawl summary for %s (%s): %d pages, %d items, %d flagged (%s), %d unchanged, "
            "%d changed, %d near-duplicates, %d errors, %d dead-lettered, %d empty not submitted, "
            "%d truncated, %d rate-limited (429), %.1f s, %.2f pages/s",
            summary["site"], reason, summary["pages"], summary["items"], summary["flagged"],
            by_label, summary["unchanged"], summary["changed"], summary["near_duplicates"],
            summary["errors"], summary["api_dead_lettered"], summary["api_dropped_empty"],
            summary["api_truncated"], summary["api_rate_limited"], summary["elapsed_s"],
            summary["pages_per_s"],
        )
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.path).write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
        close_state(self.crawler)


class FingerprintExpiry:
    """Clears request fingerprints when a crawl finishes (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.ttl = crawler.settings.getint("JINGWANG_FINGERPRINT_TTL", 7 * 24 * 3600)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FingerprintExpiry:
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        # spider_closed fires after the scheduler (and its dupefilter file) has closed.
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def _dupefilter_key(self) -> str:
        from scrapy_redis import defaults

        assert self.crawler.spider is not None
        key = self.crawler.settings.get("SCHEDULER_DUPEFILTER_KEY", defaults.SCHEDULER_DUPEFILTER_KEY)
        return key % {"spider": self.crawler.spider.name}

    def spider_opened(self, spider: Any) -> None:
        if is_redis_crawl(self.crawler) and self.ttl > 0:
            from scrapy_redis.connection import get_redis_from_settings

            get_redis_from_settings(self.crawler.settings).expire(self._dupefilter_key(), self.ttl)

    def spider_closed(self, spider: Any, reason: str) -> None:
        if is_redis_crawl(self.crawler):
            # Other nodes may still be working; the last one to finish clears the filter.
            from scrapy_redis.connection import get_redis_from_settings

            server = get_redis_from_settings(self.crawler.settings)
            nodes = f"{redis_prefix(self.crawler)}:nodes"
            alive = [n for n, beat in server.hgetall(nodes).items() if _alive(beat)]
            if reason == "finished" and not alive:
                server.delete(self._dupefilter_key())
                logger.info("crawl finished: cleared the shared request fingerprints")
            elif self.ttl > 0:
                # Kept for the resumption or the other nodes, but not forever.
                server.expire(self._dupefilter_key(), self.ttl)
            return
        if reason != "finished":
            return
        jobdir = self.crawler.settings.get("JOBDIR")
        if jobdir:
            seen = Path(jobdir) / "requests.seen"
            if seen.exists():
                seen.unlink()
                logger.info("crawl finished: cleared %s so the next crawl refetches", seen)


class RedisIdle:
    """Distributed nodes: heartbeat, and stay open while any other node is busy."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.idle_close = crawler.settings.getfloat("JINGWANG_REDIS_IDLE_CLOSE", 3.0)
        self.node = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.idle_since: float | None = None
        self.server: Any = None
        self.loop: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisIdle:
        if not is_redis_crawl(crawler):
            raise NotConfigured
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(extension.response_received, signal=signals.response_received)
        # Before FingerprintExpiry's handler, which asks whether other nodes are alive.
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    @property
    def key(self) -> str:
        return f"{redis_prefix(self.crawler)}:nodes"

    def spider_opened(self, spider: Any) -> None:
        from scrapy_redis.connection import get_redis_from_settings

        self.server = get_redis_from_settings(self.crawler.settings)
        self.beat(busy=True)
        self.loop = task.LoopingCall(self.beat)
        self.loop.start(1.0, now=False)

    def beat(self, busy: bool | None = None) -> None:
        if busy is None:
            busy = self.idle_since is None
        self.server.hset(self.key, self.node, json.dumps({"t": time.time(), "busy": busy}))

    def response_received(self, *args: Any, **kwargs: Any) -> None:
        self.idle_since = None

    def spider_idle(self, spider: Any) -> None:
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
            self.beat(busy=False)
        others_busy = any(
            _alive(beat, busy=True)
            for node, beat in self.server.hgetall(self.key).items()
            if _text(node) != self.node
        )
        if others_busy or now - self.idle_since < self.idle_close:
            logger.debug("node %s idle; others busy: %s; staying open", self.node, others_busy)
            raise DontCloseSpider

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.server.hdel(self.key, self.node)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _alive(beat: bytes | str, *, busy: bool = False, within: float = 5.0) -> bool:
    try:
        data = json.loads(beat)
    except ValueError:
        return False
    return time.time() - data.get("t", 0) < within and (data.get("busy", False) or not busy)
