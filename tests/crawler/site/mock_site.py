"""A local mock site for crawler tests and bench/crawl.py: forum, classifieds, feeds, traps.

`MockSite` serves on a free loopback port from a background thread and counts every
request per path, so tests can assert "fetched once" and "never fetched". Layout:

- ``/robots.txt``: disallows ``/private/``, names the sitemap
- ``/forum/list-{1,2,3}.html``: list pages with pagination (UTF-8)
- ``/forum/thread-N.html``: ads and look-alike negatives (`pages.FORUM_POSTS`)
- ``/forum/thread-gbk.html`` (header says GBK; holds a GB18030-only character),
  ``/forum/post-big5.html`` (Big5, declared in <meta> only)
- ``/forum/changing.html``: its text depends on ``MockSite.version``
- ``/forum/huge.html``: about 3 MB
- ``/private/secret.html``: linked, but disallowed by robots.txt
- ``/errors/500.html``: always 500; ``/loop/a.html`` <-> ``/loop/b.html``: a redirect loop
- ``/fenlei/index-{1,2}.html``, ``/fenlei/item-N.html``: classifieds in GB18030
- ``/sitemap.xml`` (classifieds), ``/rss.xml`` (some forum threads)

``delay`` slows every detail page down (kill-and-resume and distributed tests need a crawl
that lasts a while). ``copies`` > 1 adds that many reposts of every forum thread
(``/forum/thread-N-cK.html``), each with its own title, for bench/crawl.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:
    from . import pages
except ImportError:  # loaded by file path
    import pages  # type: ignore[no-redef]

Post = pages.Post
LINKS_PER_LIST = 8


class MockSite:
    """The mock site; use as a context manager or call start()/stop()."""

    def __init__(self, delay: float = 0.0, copies: int = 1) -> None:
        self.delay = delay
        self.copies = copies
        self.version = 1
        self.hits: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._big: bytes | None = None
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                with site._lock:
                    site.hits[path] += 1
                status, headers, body = site.respond(path, self.headers.get("If-None-Match"))
                if status == 304:
                    with site._lock:
                        site.not_modified[path] += 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # A crawler killed mid-download closes the connection under us.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MockSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MockSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_hits(self) -> None:
        with self._lock:
            self.hits.clear()
            self.not_modified.clear()

    # ---- what the crawler should see -------------------------------------------------------

    @staticmethod
    def forum_detail_paths() -> list[str]:
        """Every forum detail page a polite crawl must fetch exactly once."""
        paths = [f"/forum/{post.slug}.html" for post in pages.FORUM_POSTS]
        return paths + [
            "/forum/thread-gbk.html", "/forum/post-big5.html", "/forum/changing.html",
            "/forum/huge.html",
        ]

    @staticmethod
    def classifieds_detail_paths() -> list[str]:
        return [f"/fenlei/{post.slug}.html" for post in pages.CLASSIFIEDS]

    # ---- routing ---------------------------------------------------------------------------

    def respond(self, path: str, if_none_match: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a path; forum threads carry an ETag and honour
        If-None-Match (other pages ignore it, as many servers do)."""
        status, headers, body = self._route(path)
        if status == 200 and path.startswith("/forum/") and "/list-" not in path:
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            if if_none_match == etag:
                return 304, {"ETag": etag}, b""
            headers = {**headers, "ETag": etag}
        return status, headers, body

    def _route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        html_utf8 = {"Content-Type": "text/html; charset=utf-8"}
        if path == "/robots.txt":
            body = f"User-agent: *\nDisallow: /private/\n\nSitemap: {self.base}/sitemap.xml\n"
            return 200, {"Content-Type": "text/plain"}, body.encode()
        if path.startswith("/forum/list-"):
            number = _number(path, "/forum/list-")
            if number is None or not 1 <= number <= self.forum_list_count():
                return _not_found()
            return 200, html_utf8, self.forum_list(number).encode("utf-8")
        if path.startswith("/forum/"):
            return self.forum_page(path[len("/forum/"):].removesuffix(".html"))
        if path == "/private/secret.html":
            return 200, html_utf8, _detail(pages.Post("secret", "内部页面", "不应被抓取", True)).encode()
        if path == "/errors/500.html":
            return 500, html_utf8, "<h1>500 服务器内部错误</h1>".encode()
        if path == "/loop/a.html":
            return 302, {"Location": f"{self.base}/loop/b.html", **html_utf8}, b""
        if path == "/loop/b.html":
            return 302, {"Location": f"{self.base}/loop/a.html", **html_utf8}, b""
        if path.startswith("/fenlei/index-"):
            number = _number(path, "/fenlei/index-")
            if number not in (1, 2):
                return _not_found()
            return 200, {"Content-Type": "text/html; charset=gb18030"}, self.fenlei_list(number).encode("gb18030")
        if path.startswith("/fenlei/item-"):
            post = next((p for p in pages.CLASSIFIEDS if f"/fenlei/{p.slug}.html" == path), None)
            if post is None:
                return _not_found()
            self._slow()
            return 200, {"Content-Type": "text/html; charset=gb18030"}, _fenlei_detail(post).encode("gb18030")
        if path == "/sitemap.xml":
            urls = "".join(
                f"<url><loc>{self.base}/fenlei/{p.slug}.html</loc></url>" for p in pages.CLASSIFIEDS
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
            )
            return 200, {"Content-Type": "application/xml"}, body.encode()
        if path == "/rss.xml":
            items = "".join(
                f"<item><title>{html.escape(p.title)}</title><link>{self.base}/forum/{p.slug}.html</link></item>"
                for p in pages.FORUM_POSTS[:6]
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                f"<title>论坛最新帖子</title><link>{self.base}/</link>{items}</channel></rss>"
            )
            return 200, {"Content-Type": "application/rss+xml"}, body.encode()
        return _not_found()

    def forum_links(self) -> list[tuple[str, str]]:
        """(href, title) of every thread link, in list order; the traps go on page 1."""
        traps = [
            ("/private/secret.html", "内部页面"),
            ("/errors/500.html", "服务器错误帖"),
            ("/loop/a.html", "跳转帖"),
        ]
        posts = [(f"/forum/{p.slug}.html", p.title) for p in pages.FORUM_POSTS]
        extra = [
            ("/forum/thread-gbk.html", pages.GB18030_POST.title),
            ("/forum/post-big5.html", "出售男婴（繁体）"),
            ("/forum/changing.html", "二手婴儿床转让"),
            ("/forum/huge.html", pages.BIG_POST.title),
        ]
        copies = [
            (f"/forum/{p.slug}-c{k}.html", f"{p.title}（{k}）")
            for k in range(2, self.copies + 1)
            for p in pages.FORUM_POSTS
        ]
        return traps + posts + extra + copies

    def forum_list_count(self) -> int:
        return -(-len(self.forum_links()) // LINKS_PER_LIST)

    def forum_list(self, number: int) -> str:
        per_page = LINKS_PER_LIST
        links = self.forum_links()[(number - 1) * per_page : number * per_page]
        items = "".join(
            f'<li><a class="thread" href="{href}">{html.escape(title)}</a></li>' for href, title in links
        )
        pager = ""
        if number > 1:
            pager += f'<a class="prev" href="list-{number - 1}.html">上一页</a>'
        if number < self.forum_list_count():
            pager += f'<a class="next" href="list-{number + 1}.html">下一页</a>'
        return _page(
            f"论坛 第{number}页",
            f'<ul class="threads">{items}</ul><div class="pager">{pager}</div>',
        )

    def forum_page(self, slug: str) -> tuple[int, dict[str, str], bytes]:
        self._slow()
        if slug == "thread-gbk":
            body = _detail(pages.GB18030_POST, charset="gbk")
            return 200, {"Content-Type": "text/html; charset=GBK"}, body.encode("gb18030")
        if slug == "post-big5":
            # No charset in the header: the crawler must find the <meta>.
            return 200, {"Content-Type": "text/html"}, _detail(pages.BIG5_POST, charset="big5").encode(
                "big5", errors="xmlcharrefreplace"
            )
        if slug == "changing":
            post = pages.CHANGING_V1 if self.version == 1 else pages.CHANGING_V2
            return 200, {"Content-Type": "text/html; charset=utf-8"}, _detail(post).encode()
        if slug == "huge":
            if self._big is None:
                comments = "".join(
                    f'<div class="reply">{i}楼 {pages.BIG_COMMENT}</div>' for i in range(2, 40000)
                )
                self._big = _detail(pages.BIG_POST, extra=comments).encode()
            return 200, {"Content-Type": "text/html; charset=utf-8"}, self._big
        base, _, copy = slug.partition("-c")
        post = next((p for p in pages.FORUM_POSTS if p.slug == base), None)
        if post is None or (copy and not (copy.isdigit() and 2 <= int(copy) <= self.copies)):
            return _not_found()
        if copy:
            post = pages.Post(post.slug, f"{post.title}（{copy}）", post.body, post.flagged, post.author)
        return 200, {"Content-Type": "text/html; charset=utf-8"}, _detail(post).encode()

    def fenlei_list(self, number: int) -> str:
        posts = pages.CLASSIFIEDS[:5] if number == 1 else pages.CLASSIFIEDS[5:]
        rows = "".join(
            f'<tr><td class="t"><a href="item-{p.slug.split("-")[1]}.html">{html.escape(p.title)}</a></td>'
            f"<td>{p.posted}</td></tr>"
            for p in posts
        )
        pager = '<a href="index-2.html">下一页</a>' if number == 1 else '<a href="index-1.html">上一页</a>'
        return _page(
            "分类信息", f'<table id="list">{rows}</table><p class="pages">{pager}</p>', charset="gb18030"
        )

    def _slow(self) -> None:
        if self.delay:
            time.sleep(self.delay)


def _number(path: str, prefix: str) -> int | None:
    raw = path[len(prefix):].removesuffix(".html")
    return int(raw) if raw.isdigit() else None


def _not_found() -> tuple[int, dict[str, str], bytes]:
    return 404, {"Content-Type": "text/html; charset=utf-8"}, "<h1>404 页面不存在</h1>".encode()


def _page(title: str, main: str, charset: str = "utf-8") -> str:
    # Navigation and footer mention flagged words on purpose: clean text must drop them.
    return (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="{charset}">'
        f"<title>{html.escape(title)} - 本地论坛</title>"
        "<style>body{font-family:sans-serif}</style>"
        "<script>window.ads = ['代孕包成功'];</script></head><body>"
        '<div id="header"><nav><a href="/">首页</a> <a href="/forum/list-1.html">论坛</a> '
        '<a href="/news/">打击代孕、卖肾专题</a></nav></div>'
        f'<div id="main">{main}</div>'
        '<div class="footer">版权所有 本地论坛 举报拐卖儿童线索请拨打110</div></body></html>'
    )


def _detail(post: Post, charset: str = "utf-8", extra: str = "") -> str:
    paragraphs = "".join(f"<p>{html.escape(s)}。</p>" for s in post.body.split("。") if s)
    main = (
        f'<div class="post"><h1 class="title">{html.escape(post.title)}</h1>'
        f'<div class="meta">作者：<span class="author">{html.escape(post.author)}</span> '
        f'发表于 <span class="time">{post.posted}</span></div>'
        f'<div class="content">{paragraphs}<script>track("{post.slug}")</script>'
        f'<img src="/img/{post.slug}.jpg" alt=""></div>'
        f'<div class="replies">{extra}</div></div>'
    )
    return _page(post.title, main, charset=charset)


def _fenlei_detail(post: Post) -> str:
    main = (
        f'<table class="info"><tr><th>标题</th><td id="subject">{html.escape(post.title)}</td></tr>'
        f'<tr><th>联系人</th><td id="contact">{html.escape(post.author)}</td></tr>'
        f'<tr><th>发布时间</th><td id="date">{post.posted.replace("-", "年", 1).replace("-", "月", 1).replace(" ", "日 ", 1)}</td></tr></table>'
        f'<div id="desc">{html.escape(post.body)}</div>'
    )
    return _page(post.title, main, charset="gb18030")


def write_site_files(base: str, folder: Path) -> dict[str, Path]:
    """Site files for the mock site at `base`: forum (CSS), classifieds (XPath), feed."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "forum": f"""\
name: mock-forum
start_urls: ["{base}/forum/list-1.html"]
list:
  links: "ul.threads a.thread::attr(href)"
  next_page: "div.pager a.next::attr(href)"
detail:
  title: "h1.title::text"
  body: "div.post div.content"
  author: "span.author::text"
  posted_at: "span.time::text"
  images: "div.content img::attr(src)"
limits:
  max_pages: 200
  max_depth: 6
""",
        "classifieds": f"""\
name: mock-classifieds
start_urls: ["{base}/fenlei/index-1.html"]
list:
  links: {{xpath: "//table[@id='list']//td[@class='t']/a/@href"}}
  next_page: {{xpath: "//p[@class='pages']/a[text()='下一页']/@href"}}
detail:
  url_pattern: "/fenlei/item-\\\\d+\\\\.html$"
  title: {{xpath: "//td[@id='subject']/text()"}}
  body: {{xpath: "//div[@id='desc']"}}
  author: {{xpath: "//td[@id='contact']/text()"}}
  posted_at: {{xpath: "//td[@id='date']/text()"}}
""",
        "feed": f"""\
name: mock-feed
kind: feed
feed_urls: ["{base}/sitemap.xml", "{base}/rss.xml"]
detail:
  title: "h1.title::text, td#subject::text"
  body: "div.post div.content, div#desc"
""",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(text, encoding="utf-8")
    return paths


if __name__ == "__main__":
    with MockSite() as site:
        print(f"mock site at {site.base}/forum/list-1.html (Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
