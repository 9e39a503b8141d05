"""Site files: the YAML that tells the generic spiders what to crawl and what to extract.

Adding a site means adding a YAML file; nothing here is site-specific. `load_site` reads and
validates one, raising `SiteConfigError` whose message names the key path at fault (unknown
keys, with a suggestion; missing keys; selectors that do not compile; wrong types).

A selector is written either as a plain string (CSS, parsel's dialect, so ``::text`` and
``::attr(href)`` work) or as a one-key mapping ``{css: ...}`` / ``{xpath: ...}``.

Schema (``kind: list`` is the default)::

    name: forum-example              # required, [a-z0-9_-]
    kind: list                       # list | feed
    start_urls: [https://...]        # required for kind=list
    feed_urls: [https://.../rss]     # required for kind=feed (RSS, Atom, sitemap or sitemap index)
    allowed_domains: [example.com]   # default: the hosts of the start/feed URLs
    encoding: gb18030                # optional: force a page encoding the site does not declare
    list:                            # kind=list only
      links: "ul.threads a::attr(href)"      # required: detail-page links on a list page
      next_page: "a.next::attr(href)"        # optional: the next list page
    detail:
      url_pattern: "/post/\\d+"      # optional regex: only such links are detail pages
      title: "h1::text"              # required
      body: "div.content"            # required: element(s) reduced to clean text
      author: ...                    # optional
      posted_at: ...                 # optional
      images: "div.content img::attr(src)"   # optional
    limits:
      max_pages: 1000                # stop scheduling after this many requests
      max_depth: 5                   # link depth from the start URLs
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

import yaml
from lxml import etree
from parsel.csstranslator import HTMLTranslator

__all__ = ["Selector", "SiteConfig", "SiteConfigError", "load_site", "parse_site"]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KINDS = ("list", "feed")

# Allowed keys at each level, and which of them are required. Kept as data so that the
# error for an unknown key can list the allowed ones and suggest the closest.
_TOP_KEYS = {
    "name", "kind", "start_urls", "feed_urls", "allowed_domains", "encoding",
    "list", "detail", "limits", "description",
}
_LIST_KEYS = {"links", "next_page"}
_DETAIL_KEYS = {"url_pattern", "title", "body", "author", "posted_at", "images"}
_LIMIT_KEYS = {"max_pages", "max_depth"}
_SELECTOR_KEYS = {"css", "xpath"}


class SiteConfigError(ValueError):
    """A site file is invalid; the message names the file and the key path at fault."""


@dataclass(frozen=True)
class Selector:
    """One CSS or XPath expression, compiled once at load time to catch typos early."""

    kind: str  # "css" | "xpath"
    query: str

    def extract(self, node: Any) -> list[str]:
        """All matches under a parsel `Selector`/`Response` node, as strings."""
        found = node.css(self.query) if self.kind == "css" else node.xpath(self.query)
        return [value for value in found.getall() if value is not None]

    def first(self, node: Any) -> str | None:
        """The first match, stripped, or None."""
        for value in self.extract(node):
            value = value.strip()
            if value:
                return value
        return None


@dataclass(frozen=True)
class SiteConfig:
    """A validated site file."""

    name: str
    kind: str
    start_urls: tuple[str, ...]
    feed_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    title: Selector
    body: Selector
    links: Selector | None = None
    next_page: Selector | None = None
    url_pattern: re.Pattern[str] | None = None
    author: Selector | None = None
    posted_at: Selector | None = None
    images: Selector | None = None
    encoding: str | None = None
    max_pages: int | None = None
    max_depth: int | None = None
    source: str = "<string>"
    description: str = field(default="", compare=False)

    def is_detail_url(self, url: str) -> bool:
        """Whether a link is a detail page (every link is, without a url_pattern)."""
        return self.url_pattern is None or bool(self.url_pattern.search(url))


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file; raises `SiteConfigError` on any problem."""
    path = Path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteConfigError(f"{path}: site file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteConfigError(f"{path}: cannot read site file: {exc}") from None
    try:
        raw = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        raise SiteConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_site(raw, source=str(path))


def parse_site(raw: Any, *, source: str = "<string>") -> SiteConfig:
    """Validate an already-parsed site mapping (what `yaml.safe_load` returns)."""
    v = _Validator(source)
    top = v.mapping(raw, "", _TOP_KEYS, required={"name", "detail"})

    name = v.string(top["name"], "name")
    if not _NAME_RE.match(name):
        v.fail("name", f"{name!r} must be lower-case letters, digits, '-' or '_' (max 64)")
    kind = v.string(top.get("kind", "list"), "kind")
    if kind not in _KINDS:
        v.fail("kind", f"{kind!r} is not one of {', '.join(_KINDS)}")

    start_urls = v.urls(top.get("start_urls"), "start_urls", required=kind == "list")
    feed_urls = v.urls(top.get("feed_urls"), "feed_urls", required=kind == "feed")
    if kind == "list" and "feed_urls" in top:
        v.fail("feed_urls", "only used with kind: feed")
    if kind == "feed" and "start_urls" in top:
        v.fail("start_urls", "kind: feed starts from feed_urls")

    if "allowed_domains" in top:
        domains = tuple(v.string_list(top["allowed_domains"], "allowed_domains"))
    else:
        domains = tuple(dict.fromkeys(urlparse(u).hostname or "" for u in start_urls + feed_urls))

    encoding = None
    if "encoding" in top:
        encoding = v.string(top["encoding"], "encoding")
        try:
            "".encode(encoding)
        except LookupError:
            v.fail("encoding", f"unknown encoding {encoding!r}")

    links = next_page = None
    if kind == "list":
        if "list" not in top:
            v.fail("list", "missing required key (kind: list needs list.links)")
        lst = v.mapping(top["list"], "list", _LIST_KEYS, required={"links"})
        links = v.selector(lst["links"], "list.links")
        next_page = v.selector(lst["next_page"], "list.next_page") if "next_page" in lst else None
    elif "list" in top:
        v.fail("list", "only used with kind: list")

    detail = v.mapping(top["detail"], "detail", _DETAIL_KEYS, required={"title", "body"})
    optional = {
        key: v.selector(detail[key], f"detail.{key}")
        for key in ("author", "posted_at", "images")
        if key in detail
    }
    url_pattern = None
    if "url_pattern" in detail:
        pattern = v.string(detail["url_pattern"], "detail.url_pattern")
        try:
            url_pattern = re.compile(pattern)
        except re.error as exc:
            v.fail("detail.url_pattern", f"bad regular expression {pattern!r}: {exc}")

    limits = v.mapping(top.get("limits", {}), "limits", _LIMIT_KEYS, required=set())
    max_pages = v.positive_int(limits["max_pages"], "limits.max_pages") if "max_pages" in limits else None
    max_depth = v.positive_int(limits["max_depth"], "limits.max_depth") if "max_depth" in limits else None

    return SiteConfig(
        name=name,
        kind=kind,
        start_urls=tuple(start_urls),
        feed_urls=tuple(feed_urls),
        allowed_domains=domains,
        title=v.selector(detail["title"], "detail.title"),
        body=v.selector(detail["body"], "detail.body"),
        links=links,
        next_page=next_page,
        url_pattern=url_pattern,
        encoding=encoding,
        max_pages=max_pages,
        max_depth=max_depth,
        source=source,
        description=str(top.get("description", "")),
        **optional,
    )


class _Validator:
    """Small helpers that raise `SiteConfigError` prefixed with the file and key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> NoReturn:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        raise SiteConfigError(where + message)

    def mapping(self, value: Any, path: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                self.fail(
                    _join(path, str(key)),
                    f"unknown key{suggestion} (allowed: {', '.join(sorted(allowed))})",
                )
        for key in sorted(required):
            if key not in value or value[key] is None:
                self.fail(_join(path, key), "missing required key")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def string_list(self, value: Any, path: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(path, f"expected a non-empty list of strings, got {value!r}")
        return [self.string(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def urls(self, value: Any, path: str, *, required: bool) -> list[str]:
        if value is None:
            if required:
                self.fail(path, "missing required key")
            return []
        urls = self.string_list(value, path)
        for i, url in enumerate(urls):
            parts = urlparse(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                self.fail(f"{path}[{i}]", f"{url!r} is not an absolute http(s) URL")
        return urls

    def positive_int(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(path, f"expected a positive integer, got {value!r}")
        return value

    def selector(self, value: Any, path: str) -> Selector:
        if isinstance(value, str):
            kind, query = "css", value
        elif isinstance(value, dict):
            self.mapping(value, path, _SELECTOR_KEYS, required=set())
            if len(value) != 1:
                self.fail(path, "give exactly one of css or xpath")
            kind, query = next(iter(value.items()))
            query = self.string(query, _join(path, kind))
        else:
            self.fail(path, f"expected a CSS string or {{css: ...}} / {{xpath: ...}}, got {value!r}")
        try:
            if kind == "css":
                HTMLTranslator().css_to_xpath(query)
            else:
                etree.XPath(query)
        except Exception as exc:  # cssselect and lxml raise several unrelated types
            self.fail(path, f"bad {kind.upper()} selector {query!r}: {exc}")
        return Selector(kind, query)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
