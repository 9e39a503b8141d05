"""Site files: what validates, and the messages for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crawler.config import SiteConfigError, load_site, parse_site

REPO = Path(__file__).resolve().parents[2]

VALID = {
    "name": "forum-a",
    "start_urls": ["https://bbs.example.cn/list-1.html"],
    "list": {"links": "a.thread::attr(href)", "next_page": {"xpath": "//a[@class='next']/@href"}},
    "detail": {"title": "h1::text", "body": "div.content", "url_pattern": r"/thread-\d+"},
    "limits": {"max_pages": 10, "max_depth": 3},
}


def with_changes(**changes: object) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(VALID))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = raw
        for parent in parents:
            node = node[parent]
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return raw


def test_valid_site_file() -> None:
    site = parse_site(VALID)
    assert site.name == "forum-a" and site.kind == "list"
    assert site.allowed_domains == ("bbs.example.cn",)
    assert site.next_page is not None and site.next_page.kind == "xpath"
    assert site.max_pages == 10 and site.max_depth == 3
    assert site.is_detail_url("https://bbs.example.cn/thread-12.html")
    assert not site.is_detail_url("https://bbs.example.cn/user-3.html")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"detail__titel": "h1"}, "detail.titel: unknown key; did you mean 'title'?"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"detail__title": None}, "detail.title: missing required key"),
        ({"detail__body": None}, "detail.body: missing required key"),
        ({"name": None}, "name: missing required key"),
        ({"start_urls": None}, "start_urls: missing required key"),
        ({"list": None}, "list: missing required key"),
        ({"detail__title": "h1::text("}, "detail.title: bad CSS selector 'h1::text('"),
        ({"detail__body": {"xpath": "//div[@class="}}, "detail.body: bad XPATH selector"),
        ({"detail__body": {"css": "p", "xpath": "//p"}}, "detail.body: give exactly one of css or xpath"),
        ({"detail__body": {"jq": ".a"}}, "detail.body.jq: unknown key"),
        ({"detail__url_pattern": "(unclosed"}, "detail.url_pattern: bad regular expression"),
        ({"start_urls": ["ftp://x/"]}, "start_urls[0]: 'ftp://x/' is not an absolute http(s) URL"),
        ({"name": "Forum A"}, "name: 'Forum A' must be lower-case"),
        ({"kind": "graph"}, "kind: 'graph' is not one of list, feed"),
        ({"limits__max_pages": 0}, "limits.max_pages: expected a positive integer"),
        ({"encoding": "klingon"}, "encoding: unknown encoding 'klingon'"),
        ({"feed_urls": ["https://x.cn/rss"]}, "feed_urls: only used with kind: feed"),
    ],
)
def test_invalid_site_files_name_the_key(changes: dict, message: str) -> None:
    with pytest.raises(SiteConfigError) as caught:
        parse_site(with_changes(**changes), source="site.yaml")
    assert str(caught.value).startswith("site.yaml: ")
    assert message in str(caught.value)


def test_feed_site_needs_feed_urls() -> None:
    raw = {"name": "f", "kind": "feed", "detail": {"title": "h1", "body": "p"}}
    with pytest.raises(SiteConfigError, match="feed_urls: missing required key"):
        parse_site(raw)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match="site file not found"):
        load_site(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(SiteConfigError, match="not valid YAML"):
        load_site(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(SiteConfigError, match="expected a mapping"):
        load_site(scalar)


@pytest.mark.parametrize("path", sorted((REPO / "crawler" / "sites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_example_site_files_validate(path: Path) -> None:
    site = load_site(path)
    assert site.name == path.stem
