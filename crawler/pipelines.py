"""Item pipelines, in the order they run (see ITEM_PIPELINES in settings.py).

1. `DedupPipeline`: drops pages unchanged since the last crawl, versions changed ones, marks
   near-duplicates (reposts) of other pages.
2. `ScreeningPipeline`: screens the page text in-process with `models.scorer.Screener`.
3. `FeedPipeline`: appends each item to the JSON Lines feed and flushes at once, so a
   crawl killed outright loses no item it has already counted as done.
4. `ApiSinkPipeline`: submits pages in batches to a running jingwang service, retrying with
   back-off (or as long as a 429's ``Retry-After`` says); what cannot be delivered goes to
   a dead-letter file, never silently nowhere. Pages the service would refuse outright are
   fixed first: empty texts are not sent (and counted), over-long ones are cut to the
   service's limit (and flagged as truncated).
5. `StatePipeline`: records the page in the crawl state.

The crawl state is written only once an item is in its sink (the feed line flushed, or the
service's 2xx received; with the API sink it is the sink that records it), so a page whose
item was lost to a kill or a failed delivery is offered again by the next crawl instead of
being skipped as unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured

from crawler.dedup import PageState, content_hash, new_record, simhash
from crawler.items import FEED_FIELDS, PageItem
from crawler.state import state_for

logger = logging.getLogger(__name__)

__all__ = [
    "ApiSinkPipeline", "DedupPipeline", "FeedPipeline", "ScreeningPipeline", "StatePipeline",
    "api_payload", "load_screener",
]


class DedupPipeline:
    """Content-hash and sim-hash dedup against the crawl state (`crawler.state`).

    Settings: ``JINGWANG_NEAR_DUPLICATES`` = ``mark`` (default: keep the item, set
    ``near_duplicate_of``) or ``drop``.
    """

    def __init__(self, crawler: Crawler, near_mode: str) -> None:
        if near_mode not in ("mark", "drop"):
            raise ValueError(f"JINGWANG_NEAR_DUPLICATES must be 'mark' or 'drop', not {near_mode!r}")
        self.crawler = crawler
        self.near_mode = near_mode
        self.state: PageState | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DedupPipeline:
        return cls(crawler, crawler.settings.get("JINGWANG_NEAR_DUPLICATES", "mark"))

    def open_spider(self) -> None:
        self.state = state_for(self.crawler)

    def process_item(self, item: PageItem) -> PageItem:
        assert self.state is not None
        stats = self.crawler.stats
        previous = self.state.get(item.url_fp)
        text_hash = content_hash(item.text)
        if previous is not None and previous.content_hash == text_hash:
            stats.inc_value("jingwang/unchanged")
            # Seen in this crawl: a resumed job need not fetch it again (`ResumeMiddleware`).
            previous.last_seen = time.time()
            previous.etag, previous.last_modified = item.etag, item.last_modified
            self.state.put(previous)
            raise DropItem(f"unchanged since the last crawl: {item.url}", log_level="DEBUG")
        value = simhash(item.text)
        near = self.state.find_near(value, exclude=item.url_fp)
        record = new_record(
            item.url, text_hash, value, previous, etag=item.etag, last_modified=item.last_modified
        )
        item.state_record = record
        item.content_hash = text_hash
        item.version = record.version
        # Stable per URL: the service stores a changed text under the same id as a new version.
        item.id = f"{item.site}:{item.url_fp[:20]}"
        if record.version > 1:
            stats.inc_value("jingwang/changed")
        if near is not None:
            item.near_duplicate_of = near.url
            stats.inc_value("jingwang/near_duplicates")
            if self.near_mode == "drop":
                # Recorded although dropped, so that a recrawl sees the repost as unchanged.
                self.state.put(record)
                raise DropItem(f"near-duplicate of {near.url}: {item.url}", log_level="INFO")
        return item


class ScreeningPipeline:
    """Screens pages with the same `Screener` as `jingwang scan`, in micro-batches.

    Pages wait up to ``JINGWANG_SCREEN_WAIT`` seconds (0.05) for up to
    ``JINGWANG_SCREEN_BATCH`` - 1 others (32 in all), then the batch is screened in a
    worker thread: a model scores a batch far faster than its pages one by one, and the
    reactor keeps downloading meanwhile. One batch runs at a time (the screener is not
    assumed thread-safe). ``JINGWANG_SCREEN_BATCH = 1`` screens each page inline.

    Settings: ``JINGWANG_SCREEN`` (bool), ``JINGWANG_MODEL`` ("" = the shipped default,
    "lexicon", "baseline", or a model directory).
    """

    def __init__(self, crawler: Crawler, model: str, batch_size: int, max_wait: float) -> None:
        if batch_size < 1:
            raise ValueError(f"JINGWANG_SCREEN_BATCH must be at least 1, not {batch_size}")
        self.crawler = crawler
        self.model = model
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.screener: Any = None
        self._pending: list[tuple[PageItem, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ScreeningPipeline:
        settings = crawler.settings
        if not settings.getbool("JINGWANG_SCREEN", True):
            raise NotConfigured
        return cls(
            crawler,
            settings.get("JINGWANG_MODEL", ""),
            settings.getint("JINGWANG_SCREEN_BATCH", 32),
            settings.getfloat("JINGWANG_SCREEN_WAIT", 0.05),
        )

    def open_spider(self) -> None:
        self.screener = load_screener(self.model)
        logger.info("screening with the %r model", self.model or "default")

    async def process_item(self, item: PageItem) -> PageItem:
        if self.batch_size == 1 or not _asyncio_loop_running():
            self._apply(item, self.screener.screen([item.text])[0])
            return item
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((item, done))
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait, self._flush)
        await done
        return item

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            asyncio.ensure_future(self._screen(batch))

    async def _screen(self, batch: list[tuple[PageItem, asyncio.Future[None]]]) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        try:
            async with self._lock:
                results = await asyncio.to_thread(self.screener.screen, [item.text for item, _ in batch])
        except Exception as exc:  # the items fail with the scorer's error, logged by Scrapy
            for _, done in batch:
                done.set_exception(exc)
            return
        for (item, done), result in zip(batch, results, strict=True):
            self._apply(item, result)
            done.set_result(None)

    def _apply(self, item: PageItem, screening: Any) -> None:
        result = screening.to_dict()
        item.decision = result["decision"]
        item.labels = list(result["labels"])
        item.scores = {k: round(float(v), 4) for k, v in result["scores"].items()}
        item.evidence = result["evidence"]
        _count_decision(self.crawler, item.decision, item.labels)


def _asyncio_loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class FeedPipeline:
    """Appends items to the JSON Lines feed ``JINGWANG_FEED`` (columns: `FEED_FIELDS`).

    Unlike Scrapy's FEEDS export, which writes its buffer when the crawl closes, each line
    is flushed as it is written: the feed is as complete as the crawl state says it is.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FeedPipeline:
        path = crawler.settings.get("JINGWANG_FEED")
        if not path:
            raise NotConfigured
        return cls(Path(path))

    def open_spider(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a", encoding="utf-8")

    def process_item(self, item: PageItem) -> PageItem:
        record = {name: getattr(item, name) for name in FEED_FIELDS}
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()
        return item

    def close_spider(self) -> None:
        self.file.close()


class StatePipeline:
    """Records each item's page in the crawl state, unless the API sink does it on delivery."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.state: PageState | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StatePipeline:
        if crawler.settings.get("JINGWANG_API_URL"):
            raise NotConfigured
        return cls(crawler)

    def open_spider(self) -> None:
        self.state = state_for(self.crawler)

    def process_item(self, item: PageItem) -> PageItem:
        assert self.state is not None
        if item.state_record is not None:
            self.state.put(item.state_record)
        return item


class ApiSinkPipeline:
    """Submits pages to ``POST {JINGWANG_API_URL}/v1/screen`` in batches.

    Settings: ``JINGWANG_API_URL``, ``JINGWANG_API_KEY``, ``JINGWANG_API_AUTH_HEADER``
    (default ``Authorization``), ``JINGWANG_API_AUTH_SCHEME`` (default ``Bearer``; empty for a
    bare key), ``JINGWANG_API_BATCH`` (32), ``JINGWANG_API_RETRIES`` (5),
    ``JINGWANG_API_BACKOFF`` (0.5 s, doubled per try), ``JINGWANG_API_TIMEOUT`` (30 s),
    ``JINGWANG_DEAD_LETTER`` (a JSON Lines file; default ``dead-letter.jsonl``),
    ``JINGWANG_API_MAX_TEXT_CHARS`` (20000: the service's ``JINGWANG_MAX_TEXT_CHARS``),
    ``JINGWANG_API_RATE_LIMIT_RETRIES`` (10), ``JINGWANG_API_MAX_RETRY_AFTER`` (60 s).

    The service refuses a whole batch for one empty or over-long text, so those are dealt
    with before submitting: a page whose text is empty or whitespace is not sent (counted as
    ``jingwang/api/dropped_empty``; its state is recorded, so a recrawl offers it again only
    once its text changes), and a text over the limit is cut to it, with ``truncated: true``
    and ``original_chars`` in the item's metadata (counted as ``jingwang/api/truncated``).

    A transport error, 408 or 5xx is retried, ``JINGWANG_API_RETRIES`` times at most.
    A 429 (the key is over its rate limit) is not the service failing: the same batch is sent
    again after the answer's ``Retry-After`` seconds (at most ``JINGWANG_API_MAX_RETRY_AFTER``;
    the usual back-off when the header is missing or not a number), up to
    ``JINGWANG_API_RATE_LIMIT_RETRIES`` times, a budget of its own so that a busy service does
    not use up the error retries; each 429 is counted as ``jingwang/api/rate_limited``.
    Any other 4xx is not (it would fail again): a 400, 413 or 422 may be one bad item's
    fault, so a rejected batch is split and retried item by item, and only the items the
    service still refuses go to the dead-letter file, with its error message; other 4xx
    (401, 403, 404, ...) refuse every item alike, so the batch is dead-lettered at once.
    Delivered pages are recorded in the crawl state; dead-lettered ones are not, so the next
    crawl offers them again.
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.endpoint = settings["JINGWANG_API_URL"].rstrip("/") + "/v1/screen"
        key = settings.get("JINGWANG_API_KEY") or ""
        scheme = settings.get("JINGWANG_API_AUTH_SCHEME", "Bearer")
        self.headers = {"Content-Type": "application/json"}
        if key:
            header = settings.get("JINGWANG_API_AUTH_HEADER", "Authorization")
            self.headers[header] = f"{scheme} {key}" if scheme else key
        self.batch_size = settings.getint("JINGWANG_API_BATCH", 32)
        self.retries = settings.getint("JINGWANG_API_RETRIES", 5)
        self.rate_limit_retries = settings.getint("JINGWANG_API_RATE_LIMIT_RETRIES", 10)
        self.max_retry_after = settings.getfloat("JINGWANG_API_MAX_RETRY_AFTER", 60.0)
        self.backoff = settings.getfloat("JINGWANG_API_BACKOFF", 0.5)
        self.timeout = settings.getfloat("JINGWANG_API_TIMEOUT", 30.0)
        self.dead_letter = Path(settings.get("JINGWANG_DEAD_LETTER") or "dead-letter.jsonl")
        self.max_text_chars = settings.getint("JINGWANG_API_MAX_TEXT_CHARS", 20000)
        if self.max_text_chars < 1:
            raise ValueError(f"JINGWANG_API_MAX_TEXT_CHARS must be at least 1, not {self.max_text_chars}")
        self.buffer: list[PageItem] = []
        self.client: Any = None
        self.state: PageState | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ApiSinkPipeline:
        if not crawler.settings.get("JINGWANG_API_URL"):
            raise NotConfigured
        return cls(crawler)

    def open_spider(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(timeout=self.timeout, headers=self.headers)
        self.state = state_for(self.crawler)

    async def process_item(self, item: PageItem) -> PageItem:
        stats = self.crawler.stats
        if not item.text[: self.max_text_chars].strip():
            # The service answers 422 for a blank text (and would refuse its whole batch).
            stats.inc_value("jingwang/api/dropped_empty")
            logger.info("not submitted (empty text): %s", item.url)
            assert self.state is not None
            if item.state_record is not None:
                self.state.put(item.state_record)
            return item
        if len(item.text) > self.max_text_chars:
            stats.inc_value("jingwang/api/truncated")
            logger.info(
                "text of %d characters cut to %d for the service: %s",
                len(item.text), self.max_text_chars, item.url,
            )
        self.buffer.append(item)
        if len(self.buffer) >= self.batch_size:
            batch, self.buffer = self.buffer, []
            await self._deliver(batch)
        return item

    async def close_spider(self) -> None:
        try:
            if self.buffer:
                batch, self.buffer = self.buffer, []
                await self._deliver(batch)
        finally:
            await self.client.aclose()
        dead = self.crawler.stats.get_value("jingwang/api/dead_lettered", 0)
        if dead:
            logger.error("%d page(s) could not be delivered; see %s", dead, self.dead_letter)

    async def _deliver(self, batch: list[PageItem]) -> None:
        import httpx

        stats = self.crawler.stats
        payload = {"items": [api_payload(item, self.max_text_chars) for item in batch]}
        error = ""
        attempts = failures = rate_limited = 0
        delay = 0.0
        while True:
            if attempts:
                stats.inc_value("jingwang/api/retries")
                await asyncio.sleep(delay)
            attempts += 1
            try:
                response = await self.client.post(self.endpoint, json=payload)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("API %s failed (try %d): %s", self.endpoint, attempts, error)
                if failures >= self.retries:
                    break
                failures += 1
                delay = self.backoff * 2 ** (failures - 1)
                continue
            if response.is_success:
                assert self.state is not None
                for item in batch:
                    if item.state_record is not None:
                        self.state.put(item.state_record)
                stats.inc_value("jingwang/api/delivered", len(batch))
                stats.inc_value("jingwang/api/batches")
                self._count_results(response, batch)
                return
            error = f"HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code == 429:
                stats.inc_value("jingwang/api/rate_limited")
                if rate_limited >= self.rate_limit_retries:
                    break
                rate_limited += 1
                delay = _retry_after_seconds(
                    response.headers.get("Retry-After"),
                    fallback=self.backoff * 2 ** (rate_limited - 1),
                    cap=self.max_retry_after,
                )
                logger.warning("API %s rate-limited this key (try %d); waiting %.1f s",
                               self.endpoint, attempts, delay)
                continue
            if response.status_code == 408 or response.status_code >= 500:
                logger.warning("API %s answered %s (try %d)", self.endpoint, error, attempts)
                if failures >= self.retries:
                    break
                failures += 1
                delay = self.backoff * 2 ** (failures - 1)
                continue
            if len(batch) > 1 and response.status_code in _ITEM_ERRORS:
                # May be one bad item: deliver them one by one, so only it is dead-lettered.
                stats.inc_value("jingwang/api/split_batches")
                logger.warning("API %s refused a batch of %d (%s); sending them one by one",
                               self.endpoint, len(batch), error)
                for item in batch:
                    await self._deliver([item])
                return
            break
        self._dead_letter(batch, error, attempts=attempts)

    def _count_results(self, response: Any, batch: list[PageItem]) -> None:
        if any(item.decision is not None for item in batch):
            return  # screened in-process too: already counted
        try:
            body = response.json()
        except ValueError:
            return
        results = (body.get("results") or body.get("items") or []) if isinstance(body, dict) else []
        for result in results:
            if isinstance(result, dict) and "decision" in result:
                _count_decision(self.crawler, result["decision"], result.get("labels") or [])

    def _dead_letter(self, batch: list[PageItem], error: str, *, attempts: int) -> None:
        self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.dead_letter.open("a", encoding="utf-8") as out:
            for item in batch:
                record = {
                    "endpoint": self.endpoint,
                    "error": error,
                    "attempts": attempts,
                    "failed_at": now,
                    "item": api_payload(item, self.max_text_chars),
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.crawler.stats.inc_value("jingwang/api/dead_lettered", len(batch))
        logger.error(
            "dead-lettered %d page(s) to %s after %d tries: %s",
            len(batch), self.dead_letter, attempts, error,
        )


_ITEM_ERRORS = (400, 413, 422)
"""4xx statuses that may concern one item of a batch (bad request, too large, invalid)."""


def _retry_after_seconds(value: str | None, *, fallback: float, cap: float) -> float:
    """Seconds to wait for a ``Retry-After`` header value, at most ``cap``.

    Only the delay-seconds form is read (the jingwang service sends it); a missing,
    HTTP-date or otherwise unreadable value gives ``fallback`` (also capped).
    """
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds):
        seconds = fallback
    return min(max(seconds, 0.0), cap)


def api_payload(item: PageItem, max_text_chars: int | None = None) -> dict[str, Any]:
    """One entry of the service's ``items`` list for a crawled page.

    A text over ``max_text_chars`` is cut to it and the metadata says so (``truncated``,
    ``original_chars``), so that a reviewer knows the service saw only its start; so does a
    text the spider already cut (``JINGWANG_MAX_TEXT_CHARS``), with the page's full length.
    """
    metadata = {
        key: value
        for key, value in asdict(item).items()
        if key in ("title", "site", "author", "posted_raw", "image_urls", "crawled_at",
                   "version", "content_hash", "near_duplicate_of", "encoding")
        and value not in (None, [], "")
    }
    text = item.text
    # The page's own length when the spider cut it already: what a reviewer is missing.
    original = (item.original_chars or len(item.text)) if item.truncated else None
    if max_text_chars is not None and len(text) > max_text_chars:
        text = text[:max_text_chars]
        original = original or len(item.text)
    if original is not None:
        metadata.update(truncated=True, original_chars=original)
    payload: dict[str, Any] = {
        "external_id": item.id or item.url_fp,
        "text": text,
        "url": item.url,
        "source": "crawler",
        "metadata": metadata,
    }
    if item.posted_at:
        payload["posted_at"] = item.posted_at
    return payload


_SCREENERS: dict[str, Any] = {}


def load_screener(model: str) -> Any:
    """Load (once per process) the `Screener` for a model name or folder.

    `crawler.run.crawl` calls it before the crawl starts, so a missing model is a clear
    error up front rather than a crawl that fails at its first page.
    """
    if model not in _SCREENERS:
        from models.scorer import Screener  # heavy: only when screening is on

        _SCREENERS[model] = Screener.load(model or None)
    return _SCREENERS[model]


def _count_decision(crawler: Crawler, decision: str, labels: list[str]) -> None:
    stats = crawler.stats
    stats.inc_value(f"jingwang/decision/{decision}")
    if decision != "pass":
        stats.inc_value("jingwang/flagged")
        for label in labels:
            stats.inc_value(f"jingwang/flagged/{label}")
