"""Evasion augmentation: the inverse of `models.normalize`.

Each transform rewrites a text the way evasive ads do (taxonomy.md, "Evasion that must
not help an ad get through"), drawing evaded spellings from the normaliser's own tables
(`models.normalize.evasion_variants`), so what training data evades is what the normaliser
undoes. `evade` applies a few at random; `TRANSFORMS` lists them by name.

Transforms marked ``reversible`` are undone by `normalize` wherever the evaded key term
is not glued to a neighbouring word (a homophone next to a character it forms a word
with is left alone by design, see `models.normalize`). Emoji insertion outside key terms
and traditional characters are reversible too; `emoji_words` (宝宝 → 👶) is not, it
teaches the model what the normaliser cannot know.

Transforms never invent contact details: they only re-spell ones already in the text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from models.normalize import KEY_TERMS, evasion_variants

__all__ = ["RESPELLINGS", "TRANSFORMS", "Transform", "evade", "key_term_spans", "transform_names"]

SEPARATORS = ("-", " ", "_", ".", "·", "*", "~", "|", "/", "❤", "♥", "✨", "🌸", "\u200b", "\u3000")
"""Characters inserted between the characters of a key term (all dropped by normalize)."""

EMOJI = ("❤", "✨", "🌸", "🔥", "💯", "⭐", "🎉", "👍", "😊", "🌟")
"""Decoration inserted between CJK characters; category So, dropped by normalize."""

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_DIGIT_RUN = re.compile(r"[0-9]{5,}")


@dataclass(frozen=True)
class Transform:
    """A named evasion: ``apply(text, rng) -> text``; unchanged text when not applicable."""

    name: str
    apply: Callable[[str, random.Random], str]
    reversible: bool
    """`normalize` maps the output's key terms back (see the module docstring)."""


@cache
def _terms_longest_first() -> tuple[str, ...]:
    return tuple(sorted((t.canonical for t in KEY_TERMS), key=len, reverse=True))


def key_term_spans(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, term) occurrences of `KEY_TERMS`, longest first."""
    spans: list[tuple[int, int, str]] = []
    taken = [False] * len(text)
    for term in _terms_longest_first():
        pos = text.find(term)
        while pos != -1:
            end = pos + len(term)
            if not any(taken[pos:end]):
                spans.append((pos, end, term))
                for i in range(pos, end):
                    taken[i] = True
            pos = text.find(term, end)
    return sorted(spans)


def _replace_terms(
    text: str, rng: random.Random, pick: Callable[[str, random.Random], str | None]
) -> str:
    """Re-spell each key-term occurrence with ``pick(term, rng)`` (None keeps it)."""
    out = []
    pos = 0
    for start, end, term in key_term_spans(text):
        replacement = pick(term, rng)
        out.append(text[pos:start])
        out.append(term if replacement is None else replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _variant_picker(*kinds: str) -> Callable[[str, random.Random], str | None]:
    def pick(term: str, rng: random.Random) -> str | None:
        variants = evasion_variants(term)
        pool = [v for kind in kinds for v in variants.get(kind, ())]
        return rng.choice(pool) if pool else None

    return pick


def homophone(text: str, rng: random.Random) -> str:
    """带孕 for 代孕, 宋养 for 送养: one character of each key term swapped."""
    return _replace_terms(text, rng, _variant_picker("homophone"))


def lookalike(text: str, rng: random.Random) -> str:
    """亻弋孕 for 代孕: look-alike or split characters."""
    return _replace_terms(text, rng, _variant_picker("lookalike"))


def _pinyin_pick(term: str, rng: random.Random) -> str | None:
    variants = evasion_variants(term)
    pool = [v for v in variants.get("pinyin", ()) if _CJK.search(v)]  # mixed 代yun
    full = [v for v in variants.get("pinyin", ()) if not _CJK.search(v)]
    if full and (not pool or rng.random() < 0.5):
        # full pinyin is set off by spaces so it never glues to ASCII neighbours
        return " " + rng.choice(full) + " "
    return rng.choice(pool) if pool else None


def pinyin(text: str, rng: random.Random) -> str:
    """daiyun, dai yun, 代yun: key terms (partly) in pinyin."""
    return _replace_terms(text, rng, _pinyin_pick)


def initials(text: str, rng: random.Random) -> str:
    """dy for 代孕, sy for 送养 (only terms with accepted initials; needs CJK next to it)."""
    return _replace_terms(text, rng, _variant_picker("initials"))


def separators(text: str, rng: random.Random) -> str:
    """代-孕, 代 孕, 代❤孕: a separator between the characters of each key term."""

    def pick(term: str, rng: random.Random) -> str:
        sep = rng.choice(SEPARATORS)
        return sep.join(term)

    return _replace_terms(text, rng, pick)


def emoji(text: str, rng: random.Random) -> str:
    """Decorative emoji between CJK characters (about one in six gaps)."""
    out = []
    for i, ch in enumerate(text):
        out.append(ch)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if _CJK.match(ch) and nxt and _CJK.match(nxt) and rng.random() < 0.17:
            out.append(rng.choice(EMOJI))
    return "".join(out)


@cache
def _s2t():
    import opencc

    return opencc.OpenCC("s2t")


def traditional(text: str, rng: random.Random) -> str:
    """Simplified → traditional characters (OpenCC s2t)."""
    return _s2t().convert(text)


_FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}
_CIRCLED = {str(d): chr(0x2460 + d - 1) for d in range(1, 10)} | {"0": "⓪"}
_MATH_BOLD_DIGITS = {str(d): chr(0x1D7CE + d) for d in range(10)}


def full_width(text: str, rng: random.Random) -> str:
    """ASCII letters, digits and punctuation as full-width forms (ａｂｃ１２３)."""
    return "".join(_FULL_WIDTH.get(c, c) for c in text)


def digits(text: str, rng: random.Random) -> str:
    """Runs of 5+ digits (contact numbers) spaced, dashed, circled or in maths bold."""

    def respell(match: re.Match[str]) -> str:
        run = match.group(0)
        style = rng.randrange(4)
        if style == 0:
            return " ".join(run[i : i + 4] for i in range(0, len(run), 4))
        if style == 1:
            return "-".join(run[i : i + 3] for i in range(0, len(run), 3))
        table = _CIRCLED if style == 2 else _MATH_BOLD_DIGITS
        return "".join(table[c] for c in run)

    return _DIGIT_RUN.sub(respell, text)


_WECHAT_ALIASES = ("薇信", "v信", "徽信", "微❤信", "威x", "薇x")
_ADD_WECHAT = ("加v", "➕v", "+V", "加薇", "➕微")
_QQ_ALIASES = ("扣扣", "企鹅号")


def contact(text: str, rng: random.Random) -> str:
    """微信 → 薇信/v信/微❤信, 加微信 → 加v/➕V, qq → 扣扣."""

    def add_wechat(match: re.Match[str]) -> str:
        after = text[match.end() : match.end() + 1]
        if after.isascii() and after.isalnum():
            return "加" + rng.choice(_WECHAT_ALIASES[:4])
        return rng.choice(_ADD_WECHAT)

    text = re.sub("加微信", add_wechat, text)

    def wechat(match: re.Match[str]) -> str:
        after = text[match.end() : match.end() + 1]
        pool = _WECHAT_ALIASES[:4] if after.isascii() and after.isalnum() else _WECHAT_ALIASES
        return rng.choice(pool)

    text = re.sub("微信", wechat, text)
    return re.sub(
        r"(?<![A-Za-z])[Qq]{2}(?![A-Za-z])",
        lambda m: "企鹅号" if text[m.end() : m.end() + 1] == "号" and rng.random() < 0.5 else "扣扣",
        text,
    ).replace("企鹅号号", "企鹅号")


def emoji_words(text: str, rng: random.Random) -> str:
    """有 → 🈶, 宝宝/婴儿 → 👶 (not undone for 宝宝: 👶 normalises to 婴)."""
    text = text.replace("有", "🈶") if rng.random() < 0.5 else text
    return text.replace("宝宝", "👶").replace("婴儿", "👶")


TRANSFORMS: tuple[Transform, ...] = (
    Transform("homophone", homophone, True),
    Transform("lookalike", lookalike, True),
    Transform("pinyin", pinyin, True),
    Transform("initials", initials, True),
    Transform("contact", contact, True),
    Transform("digits", digits, True),
    Transform("separators", separators, True),
    Transform("emoji", emoji, True),
    Transform("emoji_words", emoji_words, False),
    Transform("traditional", traditional, True),
    Transform("full_width", full_width, True),
)
"""Term-level transforms come first: `evade` applies them in this order."""

_BY_NAME = {t.name: t for t in TRANSFORMS}
RESPELLINGS = frozenset({"homophone", "lookalike", "pinyin", "initials"})
"""Alternative spellings of a key term: `evade` applies at most one of them."""


def transform_names() -> list[str]:
    """Names of all transforms, in application order."""
    return [t.name for t in TRANSFORMS]


def evade(
    text: str,
    rng: random.Random,
    n_transforms: int = 1,
    *,
    only: tuple[str, ...] | None = None,
) -> str:
    """Apply `n_transforms` distinct random transforms (from `only`, default all).

    At most one of `RESPELLINGS` is used per call (fewer transforms then).
    Transforms are applied in `TRANSFORMS` order (term-level before character-level), so
    a homophone swap is not blocked by an earlier switch to traditional characters.
    Raises `ValueError` for an unknown transform name or a negative count.
    """
    if n_transforms < 0:
        raise ValueError(f"n_transforms must be >= 0, got {n_transforms}")
    names = list(only) if only is not None else transform_names()
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"unknown transform(s) {unknown}; known: {transform_names()}")
    chosen: set[str] = set()
    for name in rng.sample(names, len(names)):
        if len(chosen) == n_transforms:
            break
        if name in RESPELLINGS and chosen & RESPELLINGS:
            continue  # one re-spelling per term: 出生证明 → 出生证名 → 出生讠正名 is no ad's
        chosen.add(name)
    for transform in TRANSFORMS:
        if transform.name in chosen:
            text = transform.apply(text, rng)
    return text
