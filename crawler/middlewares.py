"""Downloader middlewares of the jingwang crawler."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Request, Response, TextResponse
from scrapy.settings import BaseSettings
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.task import deferLater

from crawler.dedup import PageState, url_fingerprint
from crawler.state import state_for


class SiteEncodingMiddleware:
    """Decodes pages with the site file's ``encoding`` when the site declares none or lies.

    Scrapy already honours the HTTP header, a BOM and ``<meta charset>`` (and maps GBK and
    GB2312 to GB18030, Big5 to Big5-HKSCS, their supersets); old Chinese forums that send
    GBK without saying so need the override, or charset detection guesses on short pages.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SiteEncodingMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        site = getattr(self.crawler.spider, "site", None)
        encoding = getattr(site, "encoding", None)
        if encoding and isinstance(response, TextResponse):
            return response.replace(encoding=encoding)
        return response


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retries, spaced out: wait ``RETRY_BACKOFF_BASE * 2**(n-1)`` seconds before
    retry n (capped at ``RETRY_BACKOFF_MAX``), or the server's ``Retry-After`` if longer.

    Only the failing request waits; the reactor keeps serving the others.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.cap = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        result = super().process_response(request, response)
        if isinstance(result, Request):
            await self._wait(result, response.headers.get(b"Retry-After"))
        return result

    async def process_exception(self, request: Request, exception: Exception) -> Request | Response | None:
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            await self._wait(result, None)
        return result

    async def _wait(self, retry: Request, retry_after: bytes | None) -> None:
        attempt = max(1, int(retry.meta.get("retry_times", 1)))
        delay = self.base * 2 ** (attempt - 1)
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after.strip()))
        delay = min(delay, self.cap)
        if delay > 0:
            # Imported here: importing the reactor at module level would install one.
            from twisted.internet import reactor

            self.crawler.stats.inc_value("retry/backoff_seconds", delay)
            await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))


class ResumeMiddleware:
    """JOBDIR crawls: never fetch again a detail page this job has already screened.

    A crawl stopped gracefully resumes from Scrapy's saved queue and ``requests.seen``.
    One killed outright (SIGKILL, power loss) leaves that queue stale, and Scrapy replays
    requests it had already sent. The job's start time is kept in
    ``JOBDIR/jingwang-job.json`` until the job finishes; a detail page whose crawl-state
    record was written since then is in a sink already, so its request is dropped here.
    """

    def __init__(self, crawler: Crawler, jobdir: Path) -> None:
        self.crawler = crawler
        self.path = jobdir / "jingwang-job.json"
        self.started_at = time.time()
        self.state: PageState | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ResumeMiddleware:
        jobdir = crawler.settings.get("JOBDIR")
        if not jobdir:
            raise NotConfigured
        middleware = cls(crawler, Path(jobdir))
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    def spider_opened(self, spider: Any) -> None:
        if self.path.exists():
            self.started_at = json.loads(self.path.read_text())["started_at"]
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"started_at": self.started_at}))
        self.state = state_for(self.crawler)

    def spider_closed(self, spider: Any, reason: str) -> None:
        if reason == "finished":
            self.path.unlink(missing_ok=True)

    def process_request(self, request: Request) -> None:
        if not request.meta.get("jingwang_detail") or self.state is None:
            return
        record = self.state.get(url_fingerprint(request.url))
        if record is not None and record.last_seen >= self.started_at:
            self.crawler.stats.inc_value("jingwang/resume_skipped")
            raise IgnoreRequest(f"already screened in this job: {request.url}")


class ConditionalGetMiddleware:
    """Recrawls ask "changed since?" instead of downloading every detail page again.

    A detail page whose crawl-state record holds an ETag or Last-Modified is requested
    with If-None-Match / If-Modified-Since; a 304 answer reaches the spider, which counts
    the page as unchanged. Servers that ignore the headers answer 200 as before, and the
    content hash decides. ``JINGWANG_CONDITIONAL_GET = False`` turns it off.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConditionalGetMiddleware:
        if not crawler.settings.getbool("JINGWANG_CONDITIONAL_GET", True):
            raise NotConfigured
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if not request.meta.get("jingwang_detail"):
            return
        record = state_for(self.crawler).get(url_fingerprint(request.url))
        if record is None or not (record.etag or record.last_modified):
            return
        if record.etag:
            request.headers.setdefault(b"If-None-Match", record.etag.encode("latin-1"))
        if record.last_modified:
            request.headers.setdefault(b"If-Modified-Since", record.last_modified.encode("latin-1"))
        request.meta["handle_httpstatus_list"] = [*request.meta.get("handle_httpstatus_list", []), 304]
