"""Contact handles in post text: phone numbers, WeChat, QQ and Telegram ids, e-mail addresses.

Ads hide contacts from keyword filters, so the extractor reads through the usual evasions:
full-width and circled digits (NFKC folds them), Chinese numerals (壹叁捌, 幺 for 1),
digits broken up by spaces, dashes or symbols ("138 0000 0001", "1-3-8..."), and WeChat
markers written as 薇/威/V/vx/➕. Each contact keeps its span in the original text and a
normalised ``value`` (digits only, or a lower-case id) so that the same handle written in
two ways links the two posts.

This works on the original text rather than `models.normalize` output on purpose: contacts
need digit-level folding the screening normaliser has no reason to do, and exact spans.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Chinese numerals as written in evasive phone numbers (financial forms, 幺 for 1, 拐 for 7).
CHINESE_DIGITS = {
    "零": "0", "〇": "0", "洞": "0",
    "一": "1", "壹": "1", "幺": "1",
    "二": "2", "贰": "2", "貳": "2", "两": "2",
    "三": "3", "叁": "3", "參": "3",
    "四": "4", "肆": "4",
    "五": "5", "伍": "5",
    "六": "6", "陆": "6", "陸": "6",
    "七": "7", "柒": "7", "拐": "7",
    "八": "8", "捌": "8",
    "九": "9", "玖": "9", "勾": "9",
}  # fmt: skip

# How many non-digit characters may sit between two digits of one number ("138 - 0000").
MAX_GAP = 2
MOBILE = re.compile(r"1[3-9]\d{9}")

# Markers folded to lower case. "v" alone only counts when no letter precedes it.
WECHAT_MARKER = r"(?:微信号?|威信|薇信|徽信|维信|vx|wx|weixin|wechat|加微|[微薇威➕✚]|(?<![a-z])v)"
QQ_MARKER = re.compile(r"(?:qq|扣扣|企鹅|(?<![a-z])q)号?[^0-9a-z\u4e00-\u9fff]{0,4}$")
SEPARATORS = r"[^0-9a-z\u4e00-\u9fff@]{0,4}"
HANDLE = r"([a-z][a-z0-9_-]{5,19})(?![a-z0-9_-])"
WECHAT = re.compile(WECHAT_MARKER + r"号?" + SEPARATORS + HANDLE)
TELEGRAM = re.compile(r"(?:telegram|纸飞机|飞机|(?<![a-z])tg)" + SEPARATORS + r"@?([a-z][a-z0-9_]{4,31})(?![a-z0-9_])")
EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}")


@dataclass(frozen=True)
class Contact:
    """One contact handle: its kind, normalised value and span in the original text."""

    kind: str  # "phone" | "wechat" | "qq" | "telegram" | "email"
    value: str
    raw: str
    start: int
    end: int

    def to_dict(self) -> dict[str, str | int]:
        """Plain JSON form."""
        return {"kind": self.kind, "value": self.value, "raw": self.raw, "start": self.start, "end": self.end}


def _fold_char(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char)
    # Keep one character per input character so that positions in the folded text are spans
    # of the original; a character NFKC expands (㎏ -> kg) stays as it was.
    return folded.lower() if len(folded) == 1 else char


# Ranges holding full-width forms, circled/parenthesised digits, compatibility letters and
# spaces; ASCII upper case is added separately. CJK ideographs and kana fold to themselves.
_FOLD_RANGES = ((0x80, 0x3000), (0x3000, 0x3040), (0x3200, 0x3400), (0xFE30, 0xFE70), (0xFF00, 0xFFF0), (0x1F100, 0x1F200))


def _build_fold_table() -> dict[int, str]:
    """Every character in `_FOLD_RANGES` that folds to something else (for str.translate:
    per-character NFKC at request time is ten times slower)."""
    table = {code: chr(code).lower() for code in range(ord("A"), ord("Z") + 1)}
    for start, end in _FOLD_RANGES:
        for code in range(start, end):
            folded = _fold_char(chr(code))
            if folded != chr(code):
                table[code] = folded
    return table


_FOLD_TABLE = _build_fold_table()


def fold(text: str) -> str:
    """Same-length folding: full-width and circled forms to ASCII, ASCII to lower case."""
    return text.translate(_FOLD_TABLE)


def normalize_value(value: str) -> str:
    """The lookup form of a handle typed by a user: digits only for numbers, else lower case."""
    folded = fold(value.strip())
    without_punctuation = re.sub(r"[\s\-.·()（）+]", "", folded)
    digits = "".join(CHINESE_DIGITS.get(c, c) for c in without_punctuation)
    if digits.isascii() and digits.isdigit():
        return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    return re.sub(r"\s", "", folded).lstrip("@")


_DIGIT = "[0-9" + "".join(CHINESE_DIGITS) + "]"
# A digit, then digits each after at most MAX_GAP separators; letters (Latin or Han) end a run.
_DIGIT_RUN = re.compile(f"{_DIGIT}(?:(?:[^\\w]|_){{0,{MAX_GAP}}}{_DIGIT})*")


def _digit_runs(folded: str) -> list[tuple[str, int, int]]:
    """Runs of digits (Arabic or Chinese) allowing short gaps: (digits, start, end)."""
    runs = []
    for match in _DIGIT_RUN.finditer(folded):
        digits = "".join(CHINESE_DIGITS.get(c, c) for c in match.group() if c.isdigit() or c in CHINESE_DIGITS)
        runs.append((digits, match.start(), match.end()))
    return runs


def extract_contacts(text: str) -> list[Contact]:
    """Every distinct contact handle in ``text``, in order of appearance."""
    folded = fold(text)
    found: list[Contact] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, value: str, start: int, end: int) -> None:
        if (kind, value) not in seen:
            seen.add((kind, value))
            found.append(Contact(kind, value, text[start:end], start, end))

    for digits, start, end in _digit_runs(folded):
        arabic = sum(c.isdigit() for c in folded[start:end])
        if len(digits) == 13 and digits.startswith("86"):
            digits = digits[2:]
        if len(digits) == 11 and MOBILE.fullmatch(digits):
            add("phone", digits, start, end)
        elif 5 <= len(digits) <= 11 and arabic and QQ_MARKER.search(folded[max(0, start - 8) : start]):
            add("qq", digits, start, end)
    for pattern, kind in ((WECHAT, "wechat"), (TELEGRAM, "telegram")):
        for match in pattern.finditer(folded):
            add(kind, match.group(1), match.start(1), match.end(1))
    for match in EMAIL.finditer(folded):
        add("email", match.group(0), match.start(), match.end())
    return sorted(found, key=lambda c: c.start)
