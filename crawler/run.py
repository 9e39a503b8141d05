"""Run one crawl in this process: what `jingwang crawl` calls.

`crawl()` validates the site file and the sinks, builds Scrapy settings from
`crawler.settings` plus its arguments, runs the crawl with `CrawlerProcess` (SIGINT/SIGTERM
stop it gracefully, so a JOBDIR crawl can resume) and returns the summary dict. A Twisted
reactor cannot restart, so call it once per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawler.config import SiteConfig, load_site

__all__ = ["CrawlOptions", "build_settings", "crawl"]


class CrawlOptions:
    """Everything a crawl can be told besides the site file (validated on construction)."""

    def __init__(
        self,
        *,
        output: str | Path | None = None,
        api_url: str | None = None,
        api_key: str | None = None,
        api_auth_header: str = "Authorization",
        api_auth_scheme: str = "Bearer",
        dead_letter: str | Path | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "jingwang",
        jobdir: str | Path | None = None,
        model: str = "default",
        screen: bool | None = None,
        state_dir: str | Path | None = None,
        log_level: str = "INFO",
        settings: dict[str, Any] | None = None,
    ) -> None:
        if api_url and not api_url.startswith(("http://", "https://")):
            raise ValueError(f"--api must be an http(s) URL, got {api_url!r}")
        if api_url and not api_key:
            raise ValueError("--api needs --key (the service's API key)")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"--redis must be a redis:// URL, got {redis_url!r}")
        if redis_url and jobdir:
            raise ValueError("--redis and --jobdir exclude each other: Redis holds the queue")
        self.output = Path(output) if output else None
        self.api_url = api_url
        self.api_key = api_key
        self.api_auth_header = api_auth_header
        self.api_auth_scheme = api_auth_scheme
        self.dead_letter = Path(dead_letter) if dead_letter else None
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.jobdir = Path(jobdir) if jobdir else None
        self.model = model
        # Screen in-process whenever there is a feed to write; the service screens for itself.
        self.screen = screen if screen is not None else (self.output is not None or not api_url)
        self.state_dir = state_dir
        self.log_level = log_level
        self.settings = dict(settings or {})


def build_settings(site: SiteConfig, options: CrawlOptions) -> Any:
    """Scrapy `Settings`: the project defaults, then what the options ask for."""
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    values: dict[str, Any] = {
        "LOG_LEVEL": options.log_level,
        "JINGWANG_SCREEN": options.screen,
        "JINGWANG_MODEL": "" if options.model == "default" else options.model,
    }
    output = options.output
    if output is None and not options.api_url:
        output = Path("runs") / "crawl" / f"{site.name}.jsonl"
    if output is not None:
        # Appended to, line by line (crawler.pipelines.FeedPipeline): a resumed crawl adds
        # to what the killed one wrote.
        values["JINGWANG_FEED"] = str(output.resolve())
    if options.api_url:
        values.update(
            JINGWANG_API_URL=options.api_url,
            JINGWANG_API_KEY=options.api_key,
            JINGWANG_API_AUTH_HEADER=options.api_auth_header,
            JINGWANG_API_AUTH_SCHEME=options.api_auth_scheme,
            JINGWANG_DEAD_LETTER=str(
                options.dead_letter or (output.with_suffix(".dead-letter.jsonl") if output
                                        else Path("runs/crawl") / f"{site.name}.dead-letter.jsonl")
            ),
        )
    if options.redis_url:
        prefix = options.redis_prefix
        values.update(
            SCHEDULER="scrapy_redis.scheduler.Scheduler",
            DUPEFILTER_CLASS="scrapy_redis.dupefilter.RFPDupeFilter",
            # Persist: one node finishing must not wipe the queue under the others;
            # FingerprintExpiry clears the fingerprints once the whole crawl is done.
            SCHEDULER_PERSIST=True,
            SCHEDULER_QUEUE_KEY=f"{prefix}:%(spider)s:requests",
            SCHEDULER_DUPEFILTER_KEY=f"{prefix}:%(spider)s:dupefilter",
            REDIS_URL=options.redis_url,
            JINGWANG_REDIS_PREFIX=prefix,
        )
    if options.jobdir:
        values["JOBDIR"] = str(options.jobdir)
    if options.state_dir is not None:
        values["JINGWANG_STATE_DIR"] = str(options.state_dir)
    values.update(options.settings)
    if options.redis_url and "CONCURRENT_REQUESTS" not in options.settings:
        # A node pulls from the shared queue as many requests as CONCURRENT_REQUESTS allows;
        # above the per-domain limit they would only wait in this node's local slot while
        # the other nodes starve.
        values["CONCURRENT_REQUESTS"] = int(
            values.get("CONCURRENT_REQUESTS_PER_DOMAIN", settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"))
        )
    settings.setdict(values, priority="cmdline")
    return settings


def crawl(site_path: str | Path, options: CrawlOptions | None = None) -> dict[str, Any]:
    """Crawl one site to completion (or until stopped) and return its summary.

    Raises `crawler.config.SiteConfigError` for a bad site file and `ValueError` for bad
    options or an unusable model, before anything is fetched.
    """
    options = options or CrawlOptions()
    site = load_site(site_path)
    if options.screen:
        from crawler.pipelines import load_screener

        load_screener("" if options.model == "default" else options.model)
    if options.redis_url:
        _check_redis(options.redis_url)

    from scrapy.crawler import CrawlerProcess

    from crawler.spiders.feed import FeedSpider
    from crawler.spiders.site import SiteSpider

    settings = build_settings(site, options)
    process = CrawlerProcess(settings)
    spider_cls = SiteSpider if site.kind == "list" else FeedSpider
    crawler = process.create_crawler(spider_cls)
    process.crawl(crawler, site=site)
    process.start()
    summary = crawler.stats.get_value("jingwang/summary") if crawler.stats else None
    return summary or {"site": site.name, "finish_reason": "not started"}


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise ValueError(f"cannot reach Redis at {url}: {exc}") from None
