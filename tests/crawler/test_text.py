"""Clean text and encodings: golden cases fed as saved pages (`HtmlResponse`)."""

from __future__ import annotations

import pytest
from scrapy.http import HtmlResponse

from crawler.extract import parse_posted_at
from crawler.text import html_to_text


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>出售婴儿车</p><p>九成新</p>", "出售婴儿车\n九成新"),
        ("<div>第一行<br>第二行</div>", "第一行\n第二行"),
        ("<div><script>var x='代孕'</script><style>p{}</style>正文</div>", "正文"),
        ("<div><nav>首页 代孕专题</nav><p>正文</p><footer>版权</footer></div>", "正文"),
        ('<div><div class="breadcrumb">论坛 &gt; 交易区</div><p>正文</p></div>', "正文"),
        ('<div><div style="display: none">隐藏 卖肾</div><p>正文</p></div>', "正文"),
        ('<div><ul role="navigation"><li>菜单</li></ul>正文</div>', "正文"),
        ("<p>全角　空格  和\t制表符</p>", "全角 空格 和 制表符"),
        ("<p>a</p>\n\n\n<p>b</p>", "a\nb"),
        ("纯文本，无标签", "纯文本，无标签"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_fragments_join_with_newlines() -> None:
    assert html_to_text(["<p>一</p>", "二", "  "]) == "一\n二"


def _page(text: str, charset: str) -> str:
    return f'<html><head><meta charset="{charset}"></head><body><div class="c">{text}</div></body></html>'


def test_gb18030_page_declared_as_gbk_decodes_four_byte_characters() -> None:
    body = _page("𠮷先生出售满月女婴", "gbk").encode("gb18030")
    response = HtmlResponse("http://127.0.0.1/a", body=body, headers={"Content-Type": "text/html; charset=GBK"})
    assert response.encoding == "gb18030"
    assert html_to_text(response.css("div.c").getall()) == "𠮷先生出售满月女婴"


def test_big5_page_declared_only_in_meta() -> None:
    body = _page("出售滿月男嬰，營養費十萬元", "big5").encode("big5")
    response = HtmlResponse("http://127.0.0.1/b", body=body, headers={"Content-Type": "text/html"})
    assert response.encoding.startswith("big5")
    assert html_to_text(response.css("div.c").getall()) == "出售滿月男嬰，營養費十萬元"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20 10:31", "2026-11-20T10:31:00+08:00"),
        ("发表于 2026/1/5", "2026-01-05T00:00:00+08:00"),
        ("2026年11月20日 10时31分", "2026-11-20T10:31:00+08:00"),
        ("2026.11.20 08:01:02", "2026-11-20T08:01:02+08:00"),
        ("2026-13-40", None),
        ("昨天", None),
        (None, None),
    ],
)
def test_parse_posted_at(raw: str | None, expected: str | None) -> None:
    assert parse_posted_at(raw) == expected
