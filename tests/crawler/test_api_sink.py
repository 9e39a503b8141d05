"""The API sink: into a real jingwang service's review queue, and through failures.

The real service runs in this test process (uvicorn in a thread, SQLite in tmp_path); the
crawl is a subprocess that submits to it. Failure modes use a small fake endpoint, since
the real service does not fail on demand.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.crawler.conftest import by_path, read_feed, run_crawl
from tests.crawler.site import pages
from tests.crawler.site.mock_site import MockSite

ADMIN_KEY = "jw_test_admin_key_for_crawler_tests_000"


@contextmanager
def running_service(tmp_path: Path, **overrides: Any) -> Iterator[dict[str, Any]]:
    """A real screening service on a free loopback port, with platform and reviewer keys."""
    serve_main = pytest.importorskip("serve.main")
    import uvicorn

    from serve.config import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'service.db'}",
        model="lexicon",
        bootstrap_admin_key=ADMIN_KEY,
        worker_enabled=False,
        **overrides,
    )
    app = serve_main.create_app(settings, start_worker=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "service did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    admin = {"X-API-Key": ADMIN_KEY}
    keys = {}
    for role, tenant in (("platform", "cyberpolice"), ("reviewer", None)):
        body = {"name": f"crawler-test-{role}", "role": role, "tenant": tenant}
        response = httpx.post(f"{base}/v1/admin/keys", json=body, headers=admin, timeout=30)
        assert response.status_code == 201, response.text
        keys[role] = response.json()["key"]
    try:
        yield {"base": base, **keys}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_service(tmp_path) as running:
        yield running


def test_flagged_pages_enter_the_review_queue_with_source_and_url(
    service: dict[str, Any], mock_site: MockSite, site_files: dict[str, Path], tmp_path: Path
) -> None:
    dead = tmp_path / "dead.jsonl"
    result = run_crawl(
        site_files["classifieds"], "--api", service["base"], "--key", service["platform"],
        "--dead-letter", str(dead), "--state-dir", str(tmp_path / "state"),
        "-s", "JINGWANG_API_BATCH=3", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not dead.exists()
    reviewer = {"Authorization": f"Bearer {service['reviewer']}"}
    queue = httpx.get(
        f"{service['base']}/v1/review/queue", params={"source": "crawler"}, headers=reviewer, timeout=30
    )
    assert queue.status_code == 200, queue.text
    queued = {}
    for task in queue.json()["tasks"]:
        item = httpx.get(f"{service['base']}/v1/items/{task['item_id']}", headers=reviewer, timeout=30)
        assert item.status_code == 200, item.text
        body = item.json()
        assert body["source"] == "crawler" and body["metadata"]["site"] == "mock-classifieds"
        queued[urlparse(body["url"]).path] = body
    flagged = {f"/fenlei/{p.slug}.html" for p in pages.CLASSIFIEDS if p.flagged}
    assert set(queued) == flagged
    assert queued["/fenlei/item-1.html"]["posted_at"].startswith("2026-11-20T02:31:00")  # 10:31 +08:00
    summary_line = next(line for line in result.stderr.splitlines() if "crawl summary for" in line)
    assert f"{len(flagged)} flagged" in summary_line  # counted from the service's answers
    assert "0 dead-lettered" in summary_line


class FlakyEndpoint:
    """A fake /v1/screen: answers 503 to every first try of a batch; 422 to one bad page."""

    def __init__(self, bad_path: str) -> None:
        self.bad_path = bad_path
        self.accepted: list[dict[str, Any]] = []
        self.calls = 0
        self.headers: list[dict[str, str]] = []
        self._seen: set[str] = set()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = endpoint.answer(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        self.calls += 1
        self.headers.append(headers)
        if path != "/v1/screen":
            return 404, {"detail": "not found"}
        batch_id = ",".join(item["external_id"] for item in body["items"])
        if batch_id not in self._seen:
            self._seen.add(batch_id)
            return 503, {"detail": "busy"}
        if any(urlparse(item["url"]).path == self.bad_path for item in body["items"]):
            return 422, {"detail": [{"loc": ["body", "items", 0, "text"], "msg": "rejected"}]}
        self.accepted.extend(body["items"])
        return 200, {"items": [{"external_id": i["external_id"], "decision": "pass", "labels": []}
                               for i in body["items"]]}


def test_retries_then_dead_letters_what_cannot_be_delivered(
    mock_site: MockSite, site_files: dict[str, Path], tmp_path: Path
) -> None:
    endpoint = FlakyEndpoint(bad_path="/fenlei/item-4.html")
    dead = tmp_path / "dead.jsonl"
    state = ["--state-dir", str(tmp_path / "state")]
    try:
        result = run_crawl(
            site_files["classifieds"], "--api", endpoint.base, "--key", "k-test-123",
            "--auth-header", "X-API-Key", "--auth-scheme", "", "--dead-letter", str(dead),
            *state, "-s", "JINGWANG_API_BATCH=4", cwd=tmp_path,
        )
    finally:
        endpoint.server.shutdown()
    assert result.returncode == 1, result.stderr[-3000:]  # something was dead-lettered
    assert all(h.get("X-API-Key") == "k-test-123" for h in endpoint.headers)
    delivered = {urlparse(item["url"]).path for item in endpoint.accepted}
    lost = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert [urlparse(r["item"]["url"]).path for r in lost] == ["/fenlei/item-4.html"]
    assert lost[0]["error"].startswith("HTTP 422") and lost[0]["item"]["source"] == "crawler"
    # Nothing silently dropped: every page was delivered or dead-lettered.
    assert delivered | {"/fenlei/item-4.html"} == set(MockSite.classifieds_detail_paths())
    assert "dead-lettered 1 page(s)" in result.stderr

    # The dead-lettered page is not remembered as done: the next crawl offers it again.
    retry_endpoint = FlakyEndpoint(bad_path="/none")
    try:
        again = run_crawl(
            site_files["classifieds"], "--api", retry_endpoint.base, "--key", "k-test-123",
            "--dead-letter", str(tmp_path / "dead2.jsonl"), *state, cwd=tmp_path,
        )
    finally:
        retry_endpoint.server.shutdown()
    assert again.returncode == 0, again.stderr[-3000:]
    assert [urlparse(i["url"]).path for i in retry_endpoint.accepted] == ["/fenlei/item-4.html"]


def test_unreachable_service_dead_letters_everything(
    mock_site: MockSite, site_files: dict[str, Path], tmp_path: Path
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    dead = tmp_path / "dead.jsonl"
    feed = tmp_path / "feed.jsonl"
    result = run_crawl(
        site_files["classifieds"], "--api", f"http://127.0.0.1:{port}", "--key", "k",
        "--dead-letter", str(dead), "-o", str(feed), "--model", "lexicon",
        "--state-dir", str(tmp_path / "state"), "-s", "JINGWANG_API_RETRIES=2", cwd=tmp_path,
    )
    assert result.returncode == 1
    lost = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert len(lost) == len(pages.CLASSIFIEDS)
    assert all(record["attempts"] == 3 and "ConnectError" in record["error"] for record in lost)
    # The feed sink is independent of the service: it still has every page, screened.
    assert len(read_feed(feed)) == len(pages.CLASSIFIEDS)


# ---------------------------------------------------------------- items the service would refuse


def test_over_long_pages_are_truncated_and_flagged_not_dead_lettered(
    mock_site: MockSite, site_files: dict[str, Path], tmp_path: Path
) -> None:
    # A service that takes 60 characters answers 413 for a batch holding a longer text
    # (before: split, and every long page dead-lettered). The sink, told the same limit,
    # cuts such texts and says so in their metadata.
    dead, feed = tmp_path / "dead.jsonl", tmp_path / "feed.jsonl"
    with running_service(tmp_path, max_text_chars=60) as service:
        result = run_crawl(
            site_files["classifieds"], "--api", service["base"], "--key", service["platform"],
            "-o", str(feed), "--model", "lexicon", "--dead-letter", str(dead),
            "--state-dir", str(tmp_path / "state"), "-s", "JINGWANG_API_MAX_TEXT_CHARS=60", cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        platform = {"X-API-Key": service["platform"]}
        listed = httpx.get(f"{service['base']}/v1/items", headers=platform, timeout=30)
        assert listed.status_code == 200, listed.text
        stored = {
            urlparse(item["url"]).path: item
            for item in (
                httpx.get(f"{service['base']}/v1/items/{row['id']}", headers=platform, timeout=30).json()
                for row in listed.json()["items"]
            )
        }
    assert not dead.exists()
    crawled = by_path(read_feed(feed))  # the feed keeps the full texts
    assert set(stored) == set(crawled) == set(MockSite.classifieds_detail_paths())
    long_pages = {path for path, item in crawled.items() if len(item["text"]) > 60}
    assert long_pages and long_pages != set(crawled)  # some of each
    for path, item in stored.items():
        if path in long_pages:
            assert item["text"] == crawled[path]["text"][:60]
            assert item["metadata"]["truncated"] is True
            assert item["metadata"]["original_chars"] == len(crawled[path]["text"])
        else:
            assert item["text"] == crawled[path]["text"] and "truncated" not in item["metadata"]
    summary_line = next(line for line in result.stderr.splitlines() if "crawl summary for" in line)
    assert f"0 dead-lettered, 0 empty not submitted, {len(long_pages)} truncated" in summary_line


@pytest.fixture
def sink_crawler(tmp_path: Path) -> Iterator[Any]:
    """A crawler (mock forum spider, crawl state in tmp_path) for driving the API sink in-process."""
    from scrapy.utils.test import get_crawler

    from crawler.spiders.site import SiteSpider
    from crawler.state import close_state
    from tests.crawler.site.mock_site import write_site_files

    sites = write_site_files("http://127.0.0.1:8000", tmp_path / "sites")
    crawlers = []

    def make(api_url: str, key: str, **settings: Any) -> Any:
        crawler = get_crawler(SiteSpider, {
            "JINGWANG_STATE_DIR": str(tmp_path / "state"), "JINGWANG_API_URL": api_url,
            "JINGWANG_API_KEY": key, "JINGWANG_API_BACKOFF": 0.01,
            "JINGWANG_DEAD_LETTER": str(tmp_path / "dead.jsonl"), **settings,
        })
        crawler.spider = SiteSpider.from_crawler(crawler, site=str(sites["forum"]))
        crawler.stats.open_spider()
        crawlers.append(crawler)
        return crawler

    yield make
    for crawler in crawlers:
        close_state(crawler)


def sink_run(crawler: Any, texts: list[str]) -> tuple[list[Any], Any]:
    """Pass pages with ``texts`` through dedup and the API sink; (items, the state) after close."""
    import asyncio

    from crawler.dedup import url_fingerprint
    from crawler.items import PageItem
    from crawler.pipelines import ApiSinkPipeline, DedupPipeline
    from crawler.state import state_for

    dedup, sink = DedupPipeline.from_crawler(crawler), ApiSinkPipeline.from_crawler(crawler)
    dedup.open_spider()
    items = []
    for number, text in enumerate(texts):
        url = f"http://forum.example/t/{number}.html"
        items.append(dedup.process_item(PageItem(
            url=url, site="mock-forum", title=text[:10], text=text,
            crawled_at="2026-11-29T08:00:00+00:00", url_fp=url_fingerprint(url),
        )))

    async def run() -> None:
        sink.open_spider()
        for item in items:
            await sink.process_item(item)
        await sink.close_spider()

    asyncio.run(run())
    return items, state_for(crawler)


def test_empty_texts_are_not_submitted_and_one_bad_item_cannot_sink_the_batch(
    service: dict[str, Any], sink_crawler: Any, tmp_path: Path
) -> None:
    crawler = sink_crawler(service["base"], service["platform"], JINGWANG_API_BATCH=10)
    long_ad = "专业代孕 包成功 联系薇 abc_test123\n" + "网友回复：周末去公园散步。" * 3000
    texts = ["出售二手婴儿车 九成新", " \n\t\u3000 ", long_ad, "高价收肾 配型快 电话 138-0000-0001"]
    items, state = sink_run(crawler, texts)
    stats = crawler.stats
    assert stats.get_value("jingwang/api/delivered") == 3
    assert stats.get_value("jingwang/api/batches") == 1  # one request: nothing was split
    assert stats.get_value("jingwang/api/dropped_empty") == 1
    assert stats.get_value("jingwang/api/truncated") == 1
    assert stats.get_value("jingwang/api/dead_lettered") is None
    assert not (tmp_path / "dead.jsonl").exists()
    # Every page is recorded, the empty one too: a recrawl offers it again only once it changes.
    assert all(state.get(item.url_fp) is not None for item in items)
    listed = httpx.get(f"{service['base']}/v1/items", headers={"X-API-Key": service["platform"]}, timeout=30)
    stored = {item["external_id"]: item for item in listed.json()["items"]}
    assert set(stored) == {items[0].id, items[2].id, items[3].id}
    long_item = httpx.get(
        f"{service['base']}/v1/items/{stored[items[2].id]['id']}",
        headers={"X-API-Key": service["platform"]}, timeout=30,
    ).json()
    assert long_item["decision"] == "block" and long_item["text"] == long_ad[:20000]
    assert long_item["metadata"]["truncated"] is True
    assert long_item["metadata"]["original_chars"] == len(long_ad)


class RefusingEndpoint:
    """A fake /v1/screen that refuses every request with one status and message."""

    def __init__(self, status: int, detail: Any) -> None:
        self.calls: list[int] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.calls.append(len(body["items"]))
                data = json.dumps({"detail": detail}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.parametrize(
    ("status", "detail", "calls"),
    [
        # May be one item's fault: split, then each item still refused is dead-lettered.
        (422, "items[0].metadata: nested deeper than 10 levels", [3, 1, 1, 1]),
        # Refuses every item alike: the batch is dead-lettered at once, not split.
        (401, "unknown API key", [3]),
    ],
)
def test_a_batch_still_refused_with_a_4xx_is_dead_lettered_with_the_error_not_retried(
    sink_crawler: Any, tmp_path: Path, status: int, detail: str, calls: list[int]
) -> None:
    endpoint = RefusingEndpoint(status, detail)
    try:
        crawler = sink_crawler(endpoint.base, "k-test-123", JINGWANG_API_BATCH=3)
        items, state = sink_run(crawler, ["帖子一 正文", "帖子二 正文", "帖子三 正文"])
    finally:
        endpoint.server.shutdown()
    assert endpoint.calls == calls
    assert crawler.stats.get_value("jingwang/api/retries") is None
    lost = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [record["item"]["external_id"] for record in lost] == [item.id for item in items]
    assert all(record["error"].startswith(f"HTTP {status}") and detail in record["error"] for record in lost)
    assert all(record["attempts"] == 1 for record in lost)
    assert crawler.stats.get_value("jingwang/api/dead_lettered") == 3
    assert all(state.get(item.url_fp) is None for item in items)  # offered again next crawl


# ---------------------------------------------------------------- rate limits (429)


class RateLimitingEndpoint:
    """A fake /v1/screen that answers 429 (with ``retry_after`` as its header, None for none)
    to the first ``limited`` requests, then 200; it notes when each request came."""

    def __init__(self, limited: int, retry_after: str | None) -> None:
        self.times: list[float] = []
        self.accepted: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.times.append(time.monotonic())
                if len(endpoint.times) <= limited:
                    status, answer = 429, {"detail": "rate limit exceeded"}
                else:
                    status, answer = 200, {"items": [
                        {"external_id": i["external_id"], "decision": "pass", "labels": []}
                        for i in body["items"]
                    ]}
                    endpoint.accepted.extend(body["items"])
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 429 and retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.parametrize("retry_after", ["0", "0.05"])
def test_a_429_is_waited_out_and_the_same_batch_sent_again(
    sink_crawler: Any, tmp_path: Path, retry_after: str
) -> None:
    from crawler.extensions import summarize

    endpoint = RateLimitingEndpoint(limited=2, retry_after=retry_after)
    try:
        # One error retry only: the two 429s must not use it up.
        crawler = sink_crawler(endpoint.base, "k-test-123", JINGWANG_API_BATCH=3, JINGWANG_API_RETRIES=1)
        started = time.monotonic()
        items, state = sink_run(crawler, ["帖子一 正文", "帖子二 正文", "帖子三 正文"])
        elapsed = time.monotonic() - started
    finally:
        endpoint.server.shutdown()
    stats = crawler.stats
    assert len(endpoint.times) == 3
    assert [i["external_id"] for i in endpoint.accepted] == [item.id for item in items]
    assert stats.get_value("jingwang/api/rate_limited") == 2
    assert stats.get_value("jingwang/api/retries") == 2
    assert stats.get_value("jingwang/api/delivered") == 3
    assert stats.get_value("jingwang/api/dead_lettered") is None
    assert not (tmp_path / "dead.jsonl").exists()
    assert all(state.get(item.url_fp) is not None for item in items)
    gaps = [later - earlier for earlier, later in zip(endpoint.times, endpoint.times[1:], strict=False)]
    assert all(gap >= float(retry_after) for gap in gaps)  # waited as told
    assert elapsed < 1.5  # the waits were the fractions of a second the service asked for
    summary = summarize(stats.get_stats(), site="mock-forum", elapsed=elapsed, reason="finished")
    assert summary["api_rate_limited"] == 2


def test_rate_limited_past_the_budget_is_dead_lettered_with_the_429(sink_crawler: Any, tmp_path: Path) -> None:
    # No Retry-After: the sink falls back on its own back-off (0.01 s in these tests).
    endpoint = RateLimitingEndpoint(limited=100, retry_after=None)
    try:
        crawler = sink_crawler(endpoint.base, "k-test-123", JINGWANG_API_BATCH=2,
                               JINGWANG_API_RATE_LIMIT_RETRIES=2)
        items, state = sink_run(crawler, ["帖子一 正文", "帖子二 正文"])
    finally:
        endpoint.server.shutdown()
    assert len(endpoint.times) == 3 and not endpoint.accepted  # not split: it is no item's fault
    assert crawler.stats.get_value("jingwang/api/rate_limited") == 3
    lost = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [record["item"]["external_id"] for record in lost] == [item.id for item in items]
    assert all(record["error"].startswith("HTTP 429") and record["attempts"] == 3 for record in lost)
    assert crawler.stats.get_value("jingwang/api/dead_lettered") == 2
    assert all(state.get(item.url_fp) is None for item in items)  # offered again next crawl


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("2", 2.0), ("0.25", 0.25), ("600", 60.0), ("-5", 0.0), (None, 1.5),
     ("Wed, 21 Oct 2026 07:28:00 GMT", 1.5), ("soon", 1.5), ("nan", 1.5), ("inf", 60.0)],
)
def test_retry_after_is_read_as_seconds_capped_with_the_back_off_as_fallback(
    header: str | None, seconds: float
) -> None:
    from crawler.pipelines import _retry_after_seconds

    assert _retry_after_seconds(header, fallback=1.5, cap=60.0) == seconds
    assert _retry_after_seconds(None, fallback=120.0, cap=60.0) == 60.0


def test_a_text_the_spider_cut_is_sent_flagged_with_the_page_length() -> None:
    from crawler.items import PageItem
    from crawler.pipelines import api_payload

    page = "标题\n" + "正文" * 50  # 103 characters on the page
    item = PageItem(url="http://forum.example/t/1.html", site="mock-forum", title="标题",
                    text=page[:40], crawled_at="2026-11-29T08:00:00+00:00", url_fp="fp",
                    truncated=True, original_chars=len(page))
    sent = api_payload(item, 20000)
    assert sent["text"] == page[:40]
    assert sent["metadata"]["truncated"] is True and sent["metadata"]["original_chars"] == len(page)
    # Cut again by the sink: the page's length is still what the reviewer is missing.
    again = api_payload(item, 10)
    assert again["text"] == page[:10] and again["metadata"]["original_chars"] == len(page)
    whole = api_payload(PageItem(url=item.url, site="s", title="t", text="短文", crawled_at="x"), 20000)
    assert "truncated" not in whole["metadata"] and "original_chars" not in whole["metadata"]
