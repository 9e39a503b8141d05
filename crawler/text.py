"""HTML to clean text: what the screener sees of a page.

Scripts, styles, navigation, headers, footers, forms and hidden elements are dropped, block
elements become line breaks and runs of blank space collapse, so that the screened text is
the post and not the site's chrome (a menu link "代孕新闻" on every page of a news site would
otherwise flag them all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import lxml.html
from lxml import etree

__all__ = ["html_to_text", "collapse_whitespace"]

# Elements whose content is never part of the post.
_DROP_TAGS = (
    "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas",
    "nav", "header", "footer", "aside", "form", "button", "select", "input", "textarea",
    "head", "title", "meta", "link",
)
# Class/id/role markers of navigation blocks on sites that predate <nav>.
_NAV_MARKERS = re.compile(
    r"(^|[\s_-])(nav|navbar|menu|breadcrumbs?|footer|header|sidebar|pager|pagination|share|"
    r"toolbar|topbar|copyright|ad-slot)($|[\s_-])",
    re.IGNORECASE,
)
_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "main",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "dd", "dt", "dl", "hr",
}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def html_to_text(fragments: str | Iterable[str]) -> str:
    """Reduce one HTML document or several fragments to clean, line-broken text."""
    if isinstance(fragments, str):
        fragments = [fragments]
    parts = [_fragment_text(fragment) for fragment in fragments if fragment and fragment.strip()]
    return collapse_whitespace("\n".join(part for part in parts if part))


def collapse_whitespace(text: str) -> str:
    """Collapse spaces within lines (ideographic space included) and blank lines between them."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", "\n".join(line for line in lines if line)).strip()


def _fragment_text(fragment: str) -> str:
    if "<" not in fragment:
        # A text node selected with ::text needs no parsing.
        return fragment
    try:
        root = lxml.html.fromstring(fragment)
    except (etree.ParserError, ValueError):
        return fragment
    for element in list(root.iter(etree.Element)):
        if element is root or element.getparent() is None:
            continue
        if _is_chrome(element):
            element.drop_tree()
    for element in root.iter(etree.Element):
        if element.tag in _BLOCK_TAGS:
            # A newline after every block keeps paragraphs apart in the text.
            element.tail = "\n" + (element.tail or "")
    return root.text_content()


def _is_chrome(element: etree._Element) -> bool:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _DROP_TAGS:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    style = (element.get("style") or "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    if element.get("role") in ("navigation", "banner", "contentinfo", "menu"):
        return True
    marker = f"{element.get('class') or ''} {element.get('id') or ''}"
    return bool(marker.strip()) and bool(_NAV_MARKERS.search(marker))
