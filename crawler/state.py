"""Where the crawl state (`crawler.dedup.PageState`) lives for a running crawler.

Distributed crawls (scrapy-redis scheduler) share `RedisState` under
``<JINGWANG_REDIS_PREFIX>:<site>:state``; single-node crawls keep a SQLite file
``<JINGWANG_STATE_DIR>/<site>.sqlite`` (default ``.jingwang/crawl``) so that a recrawl next
week knows what it screened this week. ``JINGWANG_STATE_DIR = ""`` keeps no state.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from scrapy.crawler import Crawler

from crawler.dedup import PageState, RedisState, SQLiteState

__all__ = ["is_redis_crawl", "redis_prefix", "state_for"]

_STATES: weakref.WeakKeyDictionary[Crawler, PageState] = weakref.WeakKeyDictionary()


def is_redis_crawl(crawler: Crawler) -> bool:
    """Whether this crawler uses the scrapy-redis scheduler (distributed mode)."""
    return "scrapy_redis" in str(crawler.settings.get("SCHEDULER", ""))


def redis_prefix(crawler: Crawler) -> str:
    """Key prefix of this site's shared Redis keys."""
    assert crawler.spider is not None
    return f"{crawler.settings.get('JINGWANG_REDIS_PREFIX', 'jingwang')}:{crawler.spider.name}"


def state_for(crawler: Crawler) -> PageState:
    """The crawl state of this crawler, created on first use and shared by its pipelines."""
    state = _STATES.get(crawler)
    if state is None:
        assert crawler.spider is not None
        if is_redis_crawl(crawler):
            from scrapy_redis.connection import get_redis_from_settings

            server = get_redis_from_settings(crawler.settings)
            state = RedisState(server, f"{redis_prefix(crawler)}:state")
        else:
            folder = crawler.settings.get("JINGWANG_STATE_DIR", ".jingwang/crawl")
            path = Path(folder) / f"{crawler.spider.name}.sqlite" if folder else ":memory:"
            state = SQLiteState(path)
        _STATES[crawler] = state
    return state


def close_state(crawler: Crawler) -> None:
    """Release the crawler's state store (called once the spider has closed)."""
    state = _STATES.pop(crawler, None)
    if state is not None:
        state.close()
