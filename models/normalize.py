"""The one text normaliser: undoes the evasions listed in ../shared/taxonomy.md.

Training, the scorer, the crawler and the API all call `normalize`; there is no second
copy. It is a pure function of its input (plus the tables in this module), and every
character of the result remembers the span of the original text it came from, so
evidence found in the normalised text can be shown in the text the user sent.

Stages (each keeps per-character offsets into the original):

1. **Fold** each character: emoji/symbol substitutions (``_SYMBOL_SUBSTITUTIONS``),
   enclosed/negative-circled digits and letters, NFKC (full-width, stylised maths letters,
   super/subscripts, 🈶 → 有), traditional → simplified (OpenCC ``t2s``, per character so
   offsets stay one-to-one), ASCII lower-case. Chinese numerals (三万) are left alone.
2. **Separators**: symbols, emoji, zero-width and combining characters are dropped
   everywhere; runs of spaces and separator punctuation (``- _ . * / | ~ · () 【】 ...``)
   are removed when either neighbour is CJK (代-孕, 代 孕, 代_孕, 代.孕, 代 yun), removed
   between digits when they are only spaces/dashes (138 0000 1234 → 13800001234, so
   contact numbers survive) and otherwise kept, whitespace collapsed to one space (between
   ASCII words: "dai yun", "hello world"). Clause and sentence punctuation (, ; : ! ? 。 、
   and newlines) and quotation marks (“” 「」 ‘’ ") are always kept: they separate clauses
   for the context rules and the model, and quoting marks a mention (news quoting an ad),
   (代，孕 inside a key term is undone in stage 3; 代「孕」 is not).
3. **Key-term rewrites**: one Aho-Corasick automaton over the text maps, leftmost-longest,
   evaded forms of a curated key-term list to the canonical term: homophones and
   near-homophones (pypinyin main reading, toneless, fuzzy zh/z ch/c sh/s -ng/-n; one
   character of the term changed, never one listed in the term's ``keep``), look-alike
   and split characters (亻弋孕 → 代孕), full pinyin and mixed forms (daiyun, dai yun,
   代yun), initials next to CJK (dy, sy), and contact aliases (薇信/vx/加v → 微信,
   扣扣/加q → qq). Ordinary words are protected: variants that are dictionary words are
   never generated, a homophone match whose edge character forms a dictionary word with
   the neighbouring character is skipped (携带孕妇, 送样品, 代运营), and a list of
   protected phrases wins over overlapping variants (带孩子 and 代购 are not key-term
   variants at all).

Slang (蓝宝/粉宝, 腰子, 营养费) is *not* rewritten here: those words have ordinary
meanings (烤腰子), so the lexicon scores them with context rules instead. (营养费 is a key
term only so that its pinyin spellings, 营yang费 and yyf, come back to it.)

The canonical QQ token is ``qq`` (lower case, like all ASCII after stage 1).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["KEY_TERMS", "NORMALIZER_VERSION", "KeyTerm", "Normalized", "evasion_variants", "normalize"]

NORMALIZER_VERSION = "1.2.0"
"""Bump when `normalize` output changes: artifacts record the version they were trained with."""


# --------------------------------------------------------------------------------------
# Character classes, as named Unicode ranges
# --------------------------------------------------------------------------------------

CJK_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x2E80, 0x2EFF, "CJK Radicals Supplement (⺅ ⺼: used in split-character evasion)"),
    (0x2F00, 0x2FDF, "Kangxi Radicals (NFKC folds them to unified ideographs)"),
    (0x3005, 0x3007, "々 〆 〇 (iteration mark, closing mark, ideographic zero)"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana (イ stands in for 亻 in 'イ弋孕')"),
    (0x3400, 0x4DBF, "CJK Unified Ideographs Extension A"),
    (0x4E00, 0x9FFF, "CJK Unified Ideographs"),
    (0xF900, 0xFAFF, "CJK Compatibility Ideographs"),
    (0x20000, 0x2A6DF, "CJK Unified Ideographs Extension B"),
    (0x2A700, 0x2EBEF, "CJK Unified Ideographs Extensions C-F"),
    (0x30000, 0x323AF, "CJK Unified Ideographs Extensions G-H"),
)

NEGATIVE_AND_ENCLOSED_LATIN: tuple[tuple[int, int, str], ...] = (
    (0x1F130, 0x1F149, "Squared Latin capital letters 🄰-🅉 (no NFKC mapping)"),
    (0x1F150, 0x1F169, "Negative circled Latin capital letters 🅐-🅩"),
    (0x1F170, 0x1F189, "Negative squared Latin capital letters 🅰-🆉"),
    (0x1F1E6, 0x1F1FF, "Regional indicator symbols 🇦-🇿 (flags are pairs of them)"),
)

CLAUSE_PUNCTUATION = frozenset(",;:!?。、\n")
"""Kept everywhere: they end clauses and sentences (after NFKC ，；：！？ are ASCII)."""

QUOTATION_MARKS = frozenset("\"“”‘’「」『』")
"""Kept everywhere like clause punctuation: quoting a phrase (“出售男婴”) marks a mention
in news or a warning rather than an ad, which the lexicon and the model both use."""

DIGIT_JOINERS = frozenset(" -_\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
"""Separators removed between two digits, so "138 0000-1234" becomes one number."""

KEPT_SYMBOLS = frozenset("%@#&+$¥€£")
"""Symbols that carry meaning in ads (prices, percentages, handles) and are not dropped."""

# Folded classes; the kept ones first (`_separate` tests ``> _OTHER``)
_CJK, _ALPHA, _DIGIT, _PUNCT, _OTHER, _SEP, _SPACE, _DROP = range(8)

# Emoji and symbols that stand for a word in evasive ads; everything else of category
# So/Sk (❤ ♥ ★ ✨ ...) is dropped, so 微❤信 → 微信 and 代🌸孕 → 代孕.
_SYMBOL_SUBSTITUTIONS: dict[str, str] = {
    "➕": "+", "✚": "+", "✙": "+", "╋": "+",
    "👶": "婴", "🍼": "婴", "🤰": "孕", "🫄": "孕",
    "👦": "男孩", "👧": "女孩", "🧒": "孩子",
    "💰": "钱", "💴": "钱", "💵": "钱", "💸": "钱",
    "📞": "电话", "☎": "电话", "📱": "电话",
    "🐧": "qq",
    "⓿": "0", "⓪": "0",
    "🐑": "羊", "🐐": "羊",  # 送🐑 = 送羊 ≈ 送养
    "🫘": "肾",  # kidney beans stand for kidneys in organ ads (收🫘, 🫘源)
    # CJK Radicals Supplement forms with no NFKC mapping, used to split characters.
    "⺅": "亻", "⺼": "月", "⻖": "阝", "⻏": "阝", "⺮": "竹", "⺡": "氵", "⺨": "犭",
    "⺾": "艹", "⻌": "辶", "⻊": "足",
    # Cyrillic and Greek letters that look like the Latin ones used in contact aliases.
    "ν": "v", "ѵ": "v", "ԛ": "q", "х": "x", "Х": "x", "о": "o", "а": "a", "е": "e",
    "р": "p", "с": "c", "у": "y", "ո": "n",
    # Line and paragraph separators behave like newlines.
    "\u2028": "\n", "\u2029": "\n", "\x85": "\n", "\t": " ",
}


def _in_ranges(cp: int, ranges: Iterable[tuple[int, int, str]]) -> bool:
    return any(lo <= cp <= hi for lo, hi, _ in ranges)


@functools.cache
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def _fold_once(ch: str) -> str:
    sub = _SYMBOL_SUBSTITUTIONS.get(ch)
    if sub is not None:
        return sub
    cp = ord(ch)
    if _in_ranges(cp, NEGATIVE_AND_ENCLOSED_LATIN):
        base = 0x1F1E6 if cp >= 0x1F1E6 else 0x1F130 + ((cp - 0x1F130) // 0x20) * 0x20
        return chr(ord("a") + (cp - base) % 26)
    category = unicodedata.category(ch)
    if category == "No":
        # ❶ ➀ ➊ ⓫ ⓵ have no NFKC mapping; use their numeric value (not for CJK numerals,
        # which are category Lo and stay as written).
        value = unicodedata.numeric(ch, None)
        folded = unicodedata.normalize("NFKC", ch)
        if (
            value is not None
            and value == int(value)
            and not folded.isascii()
            and not any(_is_cjk_char(c) for c in folded)  # ㈠ → (一): keep the numeral
        ):
            return str(int(value))
    out = unicodedata.normalize("NFKC", ch)
    if out == ch and _is_cjk_char(ch):
        out = _t2s().convert(ch)
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in out)


def _is_cjk_char(ch: str) -> bool:
    return _in_ranges(ord(ch), CJK_RANGES)


def _fold_char(ch: str) -> str:
    """Fold one character to a fixed point, so folding folded text changes nothing."""
    out = ch
    for _ in range(4):
        nxt = "".join(_fold_once(c) for c in out)
        if nxt == out:
            break
        out = nxt
    return out


def _classify(ch: str) -> int:
    if "a" <= ch <= "z":
        return _ALPHA
    if "0" <= ch <= "9":
        return _DIGIT
    if ch in CLAUSE_PUNCTUATION or ch in QUOTATION_MARKS:
        return _PUNCT
    if ch in KEPT_SYMBOLS:
        return _SEP if ch == "+" else _OTHER
    if ch == " ":
        return _SPACE
    if _is_cjk_char(ch):
        return _CJK
    category = unicodedata.category(ch)
    if ch.isspace() or category.startswith("Z"):
        return _SPACE
    if category[0] in "LN" or category == "Sc":
        return _OTHER
    if category[0] == "P" or category == "Sm":
        return _SEP
    return _DROP  # So, Sk, Cc, Cf, Co, Cn, Cs, Mn, Mc, Me


class _FoldTable(dict):
    """char → folded string, filled lazily (``str`` has about 1.1M code points)."""

    def __missing__(self, ch: str) -> str:
        value = self[ch] = _fold_char(ch)
        return value


class _ClassTable(dict):
    def __missing__(self, ch: str) -> int:
        value = self[ch] = _classify(ch)
        if value <= _OTHER:
            _KEPT_CHARS.add(ch)
        return value


_KEPT_CHARS: set[str] = set()
"""Characters seen so far whose class is kept as is by `_separate` (CJK, letters ...)."""


_FOLD = _FoldTable()
_CLASS = _ClassTable()
_ONE_CHAR_FOLDS: dict[int, str] = {}
"""``str.translate`` table of the characters seen so far that fold to one character."""
_FOLDS_TO_ONE: set[str] = set()
"""The same characters, as a set for a fast "all of them known?" test."""


# --------------------------------------------------------------------------------------
# Key terms
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyTerm:
    """A term whose evaded forms the normaliser rewrites to `canonical`."""

    canonical: str
    homophones: bool = True
    """Generate homophone/near-homophone, look-alike and split-character variants."""
    pinyin: bool = True
    """Accept full pinyin and pinyin mixed with characters (daiyun, 代yun)."""
    initials: str | None = None
    """Initials accepted only next to CJK text (dy → 代孕 in 找dy妈妈, not in 'study')."""
    keep: str = ""
    """Characters never substituted: the other one is too common in names and words
    (圣源, 盛源 are company names, so 肾源 variants must keep 肾; 据其官网 ≠ 器官)."""


KEY_TERMS: tuple[KeyTerm, ...] = (
    KeyTerm("代孕", initials="dy"),
    KeyTerm("代怀"),
    KeyTerm("助孕"),
    KeyTerm("供卵"),
    KeyTerm("卖卵"),
    KeyTerm("借腹", keep="腹"),
    KeyTerm("卖肾"),
    KeyTerm("买肾", homophones=False, pinyin=False),
    KeyTerm("收肾"),
    KeyTerm("肾源", keep="肾"),
    KeyTerm("肝源", keep="肝"),
    KeyTerm("配型", homophones=False),
    KeyTerm("器官", pinyin=False, keep="器"),
    KeyTerm("供体", pinyin=False, keep="供"),
    KeyTerm("送养", initials="sy"),
    KeyTerm("抱养"),
    KeyTerm("领养", homophones=False),
    KeyTerm("出生证明"),
    KeyTerm("出生证"),
    KeyTerm("准生证"),
    KeyTerm("出生医学证明", homophones=False),
    KeyTerm("男婴", keep="婴"),
    KeyTerm("女婴", keep="婴"),
    KeyTerm("拐卖"),
    # Not offences by themselves, but spelled out in pinyin inside ads (营yang费, 手xu).
    KeyTerm("营养费", homophones=False, initials="yyf"),
    KeyTerm("感谢费", homophones=False),
    KeyTerm("手续", homophones=False),
    KeyTerm("上户口", homophones=False),
)
"""The curated list: only these terms (and the contact aliases) are ever rewritten."""

# Look-alike characters and split (component) spellings, per canonical character.
_LOOKALIKES: dict[str, tuple[str, ...]] = {
    "代": ("亻弋", "イ弋", "伐"),
    "孕": ("乃子",),
    "肾": ("臤月", "贤"),
    "卵": ("卯",),
    "出": ("岀", "山山"),
    "婴": ("賏女", "贝贝女"),
    "卖": ("士买",),
    "证": ("讠正",),
}

# Contact aliases → canonical token. Multi-character aliases always count.
_WECHAT = "微信"
_WECHAT_ALIASES = (
    "薇信", "徽信", "薇芯", "威芯", "v信", "微x", "微x信", "vx", "wx", "weixin", "wei xin",
    "v x", "w x", "薇x", "威x",
)
# Aliases that are also ordinary words or names (威信 county, 维信 a lender): only
# followed by an id (威信:abc_test1, 维信号).
_WECHAT_ALIASES_BEFORE_ID = ("威信", "维信", "卫信", "伟信", "v", "薇", "威")
_WECHAT_SINGLE = ("v", "薇", "威", "微", "徽")
_QQ = "qq"
_QQ_ALIASES = ("扣扣", "企鹅号码", "企鹅号")
_QQ_SINGLE = ("q", "扣")

# Phrases that contain a variant or alias but are ordinary: they win as longer matches.
PROTECTED_PHRASES: tuple[str, ...] = (
    "送样", "收样", "领样", "送氧", "扣扣子", "微芯片", "加微博", "加微商", "加微店", "加威力",
    "加威望", "加扣子", "加扣分", "代运营", "代运输", "代运费", "送样品", "收样品", "威信度", "树立威信", "建立威信",
    "器官捐献", "带孩子", "代购", "代怀孕",
)

_ASCII_EDGE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-./")
"""Characters that continue an ASCII token (a_wx, sy-s, mp.weixin): no alias inside one."""

_ID_AFTER = re.compile(r"[a-z0-9_-]{3}")
"""What must follow 威信: / v: for them to be a contact: the start of an id or number."""

_SPLITTING_PUNCTUATION = (",", "、", "。")
"""Clause punctuation is kept by stage 2, so 代，孕 is undone here, inside key terms only,
with the same dictionary guard as homophones (交代，孕妇 stays)."""

# Rewrite kinds
_IDENTITY, _HOMOPHONE, _ASCII, _INITIALS, _CONTACT_AFTER_ID = range(5)
_CONTACT = _ASCII  # contact aliases only need ASCII word boundaries


def _strip_tone(syllable: str) -> str:
    decomposed = unicodedata.normalize("NFD", syllable).replace("u\u0308", "v")
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _fuzzy(syllable: str) -> str:
    """Merge the initials and finals that speakers (and evaders) confuse."""
    if syllable[:2] in ("zh", "ch", "sh"):
        syllable = syllable[0] + syllable[2:]
    if syllable.endswith("ng"):
        syllable = syllable[:-1]
    return syllable


@functools.cache
def _readings(ch: str) -> tuple[str, ...]:
    """Toneless pinyin readings of one character (all heteronyms), cached per character."""
    from pypinyin.pinyin_dict import pinyin_dict

    raw = pinyin_dict.get(ord(ch))
    if not raw:
        return ()
    return tuple(dict.fromkeys(_strip_tone(s) for s in raw.split(",")))


@functools.cache
def _common_chars() -> tuple[str, ...]:
    """The 6,763 GB2312 hanzi: evaders pick homophones people can type and read."""
    chars = []
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return tuple(chars)


@functools.cache
def _homophone_index() -> dict[str, frozenset[str]]:
    # Only a character's first (main) reading: 大 is read dai only in 大夫, so 大孕 is
    # no evasion of 代孕.
    index: dict[str, set[str]] = {}
    for ch in _common_chars():
        readings = _readings(ch)
        if readings:
            index.setdefault(_fuzzy(readings[0]), set()).add(ch)
    return {k: frozenset(v) for k, v in index.items()}


@functools.cache
def _dictionary_words() -> frozenset[str]:
    """Two- and three-character words of jieba's dictionary (frequency ≥ 3).

    Used to keep ordinary words out of the homophone rewrites; read once per process.
    """
    import jieba

    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    words = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word, freq, _ = line.split(" ", 2)
            if 2 <= len(word) <= 3 and int(freq) >= 3:
                words.add(word)
    return frozenset(words)


def _term_syllables(term: str) -> list[str]:
    from pypinyin import lazy_pinyin

    return lazy_pinyin(term)


def _substitutes(ch: str, syllable: str) -> set[str]:
    subs = set(_homophone_index().get(_fuzzy(syllable), ()))
    subs.difference_update(_LOOKALIKES.get(ch, ()))
    subs.discard(ch)
    return subs


def _homophone_variants(term: KeyTerm, words: frozenset[str]) -> Iterable[tuple[str, str]]:
    """(variant, kind) pairs, kind "homophone" or "lookalike"; dictionary words left out."""
    syllables = _term_syllables(term.canonical)
    chars = list(term.canonical)
    options = [
        sorted(_LOOKALIKES.get(c, ())) + ([] if c in term.keep else sorted(_substitutes(c, s)))
        for c, s in zip(chars, syllables, strict=True)
    ]
    # One changed character per variant: with two, ordinary phrases start to collide.
    for position, picks in enumerate(options):
        lookalikes = _LOOKALIKES.get(chars[position], ())
        for pick in picks:
            text = "".join(chars[:position]) + pick + "".join(chars[position + 1 :])
            if text not in words:
                yield text, "lookalike" if pick in lookalikes else "homophone"


def _pinyin_variants(term: KeyTerm) -> Iterable[str]:
    syllables = _term_syllables(term.canonical)
    chars = list(term.canonical)
    yield "".join(syllables)
    yield " ".join(syllables)
    if len(chars) > 3:
        return
    for mask in itertools.product((False, True), repeat=len(chars)):
        if all(mask) or not any(mask):
            continue
        yield "".join(s if m else c for c, s, m in zip(chars, syllables, mask, strict=True))
        if len(chars) == 2 and term.initials:
            yield "".join(s[0] if m else c for c, s, m in zip(chars, syllables, mask, strict=True))


@dataclass(frozen=True, slots=True)
class _Rewrite:
    replacement: str
    kind: int
    length: int


@functools.cache
def _rewriter():
    """Build the automaton of all rewrites (about 0.5 s, once per process)."""
    import ahocorasick

    words = _dictionary_words()
    entries: dict[str, _Rewrite] = {}
    key_canonicals = {t.canonical for t in KEY_TERMS}
    variants: dict[str, dict[str, list[str]]] = {t.canonical: {} for t in KEY_TERMS}

    def add(key: str, replacement: str, kind: int, variant_kind: str = "") -> None:
        # First writer wins: canonical terms and protected phrases are added first, so a
        # generated variant never overrides them (卖身 is a word, 买肾 is a key term).
        if key and key not in entries:
            entries[key] = _Rewrite(replacement, kind, len(key))
            if variant_kind:
                variants[replacement].setdefault(variant_kind, []).append(key)

    for term in KEY_TERMS:
        add(term.canonical, term.canonical, _IDENTITY)
    for phrase in PROTECTED_PHRASES:
        add(phrase, phrase, _IDENTITY)
    for alias in _WECHAT_ALIASES:
        add(alias, _WECHAT, _CONTACT)
    for alias in _QQ_ALIASES:
        add(alias, _QQ + alias[2:] if alias.startswith("企鹅") else _QQ, _CONTACT)
    for lead in ("加", "+"):
        for alias in _WECHAT_SINGLE:
            add(lead + alias, "加" + _WECHAT, _CONTACT)
        for alias in _QQ_SINGLE:
            add(lead + alias, "加" + _QQ, _CONTACT)
        add(lead + _WECHAT, "加" + _WECHAT, _CONTACT)
        for alias in _WECHAT_ALIASES:
            add(lead + alias, "加" + _WECHAT, _CONTACT)
        for alias in _QQ_ALIASES:
            add(lead + alias, "加" + _QQ + alias[2:] if alias.startswith("企鹅") else "加" + _QQ,
                _CONTACT)
    for alias in _WECHAT_ALIASES_BEFORE_ID:
        for colon in (":", "号", "号:"):
            add(alias + colon, _WECHAT + colon, _CONTACT_AFTER_ID)
    for alias in ("q", "扣"):
        for colon in (":", "号", "号:"):
            add(alias + colon, _QQ + colon, _CONTACT_AFTER_ID)
    for term in KEY_TERMS:
        if term.pinyin:
            for variant in _pinyin_variants(term):
                initials_only = all(c in _ASCII_EDGE for c in variant) and len(variant) <= 3
                kind = _INITIALS if initials_only else _ASCII
                add(variant, term.canonical, kind, "initials" if initials_only else "pinyin")
        if term.initials:
            add(term.initials, term.canonical, _INITIALS, "initials")
        for i in range(1, len(term.canonical)):
            for mark in _SPLITTING_PUNCTUATION:
                variant = term.canonical[:i] + mark + term.canonical[i:]
                add(variant, term.canonical, _HOMOPHONE, "punctuation")
        if term.homophones:
            for variant, variant_kind in _homophone_variants(term, words):
                if variant not in key_canonicals:
                    add(variant, term.canonical, _HOMOPHONE, variant_kind)

    automaton = ahocorasick.Automaton()
    for key, rewrite in entries.items():
        automaton.add_word(key, rewrite)
    automaton.make_automaton()
    guard = frozenset(w for w in words if len(w) == 2)
    frozen_variants = {
        term: {kind: tuple(keys) for kind, keys in kinds.items()}
        for term, kinds in variants.items()
    }
    return automaton, guard, frozen_variants


def evasion_variants(canonical: str) -> dict[str, tuple[str, ...]]:
    """Evaded spellings of a key term that `normalize` rewrites back to `canonical`.

    Keys: ``homophone``, ``lookalike``, ``pinyin``, ``initials``, ``punctuation`` (absent
    when the term has none). The augmenter (`training.augment`) draws from these, so training data evades
    exactly the way the normaliser undoes. A homophone is undone only where its edge
    characters do not form a word with the neighbouring text. Raises `KeyError` for a
    term that is not in `KEY_TERMS`.
    """
    return dict(_rewriter()[2][canonical])


# --------------------------------------------------------------------------------------
# The result type
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Normalized:
    """Normalised text plus, per character, the span of `original` it came from.

    ``starts[i]``/``ends[i]`` are the original span of ``text[i]``; both sequences are
    non-decreasing.
    """

    text: str
    original: str
    starts: Sequence[int]
    ends: Sequence[int]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the span ``text[start:end]`` to the span of `original` it came from.

        An empty span maps to an empty span at the matching position. Raises
        `ValueError` for a span outside the normalised text.
        """
        n = len(self.text)
        if not 0 <= start <= end <= n:
            raise ValueError(f"span ({start}, {end}) outside normalised text of length {n}")
        if start == end:
            if start < n:
                return self.starts[start], self.starts[start]
            pos = self.ends[n - 1] if n else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------

_CONTACT_LEADS = frozenset("vqw微薇威徽扣企")


def _fold(text: str) -> tuple[list[str], list[int], list[int]]:
    n = len(text)
    if _FOLDS_TO_ONE.issuperset(text):  # most texts: one character each, offsets 1:1
        return list(text.translate(_ONE_CHAR_FOLDS)), list(range(n)), list(range(1, n + 1))
    fold = _FOLD
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(text):
        out = fold[ch]
        if len(out) == 1:
            _ONE_CHAR_FOLDS[ord(ch)] = out
            _FOLDS_TO_ONE.add(ch)
        for c in out:
            chars.append(c)
            starts.append(i)
            ends.append(i + 1)
    return chars, starts, ends


def _separate(
    chars: list[str], starts: list[int], ends: list[int]
) -> tuple[list[str], list[int], list[int]]:
    """Drop symbols, remove separators around CJK and between digits, collapse spaces.

    Works run by run: a run is a maximal stretch of separator, space and dropped
    characters; what happens to it depends on the kept characters on either side.
    """
    if _KEPT_CHARS.issuperset(chars):
        return chars, starts, ends
    cls = _CLASS
    special = [i for i, ch in enumerate(chars) if cls[ch] > _OTHER]
    if not special:
        return chars, starts, ends
    out_c: list[str] = []
    out_s: list[int] = []
    out_e: list[int] = []
    n = len(chars)
    pos = 0  # next index of `chars` not yet copied
    k = 0
    while k < len(special):
        run_start = special[k]
        run_end = run_start + 1
        k += 1
        while k < len(special) and special[k] == run_end:
            run_end += 1
            k += 1
        out_c.extend(chars[pos:run_start])
        out_s.extend(starts[pos:run_start])
        out_e.extend(ends[pos:run_start])
        pos = run_end
        pending = [j for j in range(run_start, run_end) if cls[chars[j]] != _DROP]
        if not pending or run_end == n:
            continue  # only dropped characters, or trailing separators
        before = chars[run_start - 1] if run_start else ""
        after = chars[run_end]
        prev, nxt = (cls[before] if before else -1), cls[after]
        if prev in (-1, _CJK, _PUNCT) or nxt in (_CJK, _PUNCT):  # -1: leading separators
            if after in _CONTACT_LEADS and before != "加":
                plus = next((j for j in pending if chars[j] == "+"), None)
                if plus is not None:  # 代+v / 请 + 微 → keep the + for the contact rewrite
                    out_c.append("+")
                    out_s.append(starts[plus])
                    out_e.append(ends[plus])
        elif prev == _DIGIT and nxt == _DIGIT and all(
            chars[j] in DIGIT_JOINERS or cls[chars[j]] == _SPACE for j in pending
        ):
            pass  # 138 0000-0000 → one number
        else:
            last_space = False
            for j in pending:
                is_space = cls[chars[j]] == _SPACE
                if is_space and last_space:
                    continue
                out_c.append(" " if is_space else chars[j])
                out_s.append(starts[j])
                out_e.append(ends[j])
                last_space = is_space
    out_c.extend(chars[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    return out_c, out_s, out_e


def _rewrite(
    chars: list[str], starts: list[int], ends: list[int]
) -> tuple[list[str], list[int], list[int], bool]:
    automaton, guard, _ = _rewriter()
    text = "".join(chars)
    cls = _CLASS
    n = len(text)
    candidates = []
    for end_index, rw in automaton.iter(text):
        end = end_index + 1
        start = end - rw.length
        candidates.append((start, -rw.length, end, rw))
    if not candidates:
        return chars, starts, ends, False
    candidates.sort(key=lambda c: (c[0], c[1]))
    chosen = []
    covered = 0
    for start, _, end, rw in candidates:
        if start < covered:
            continue
        key = text[start:end]
        if rw.kind != _IDENTITY:
            before = text[start - 1] if start else ""
            after = text[end] if end < n else ""
            if key[0] in _ASCII_EDGE and before and before in _ASCII_WORD:
                continue
            if key[-1] in _ASCII_EDGE and after and after in _ASCII_WORD:
                continue
            if rw.kind == _INITIALS and not (
                (before and cls[before] == _CJK) or (after and cls[after] == _CJK)
            ):
                continue
            if rw.kind == _HOMOPHONE and (
                (before and before + key[0] in guard) or (after and key[-1] + after in guard)
            ):
                continue
            if rw.kind == _CONTACT_AFTER_ID and not _ID_AFTER.match(text, end):
                continue
            if key[0] in "加+" and len(key) == 2 and after and (
                after in "信芯心" or (key[-1] in "vq" and after in _ASCII_EDGE)
            ):
                # 加vip is no contact; 加威信 (增加威信) is prestige unless an id follows.
                continue
        chosen.append((start, end, rw))
        covered = end
    changed = False
    out_c: list[str] = []
    out_s: list[int] = []
    out_e: list[int] = []
    pos = 0
    for start, end, rw in chosen:
        if rw.replacement == text[start:end]:
            continue
        changed = True
        out_c.extend(chars[pos:start])
        out_s.extend(starts[pos:start])
        out_e.extend(ends[pos:start])
        span_start, span_end = starts[start], ends[end - 1]
        for c in rw.replacement:
            out_c.append(c)
            out_s.append(span_start)
            out_e.append(span_end)
        pos = end
    if not changed:
        return chars, starts, ends, False
    out_c.extend(chars[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    return out_c, out_s, out_e, True


def normalize(text: str) -> Normalized:
    """Normalise `text` for screening, keeping a map back to the original offsets.

    >>> n = normalize("代-孕 包成功")
    >>> n.text
    '代孕包成功'
    >>> n.to_original(0, 2)
    (0, 3)
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize() needs a str, got {type(text).__name__}")
    chars, starts, ends = _separate(*_fold(text))
    # Rewrites can bring CJK next to a space that stage 2 would now remove (a dy孕 →
    # a 代孕孕): repeat until nothing changes, so normalize(normalize(x).text) is stable.
    for _ in range(4):
        chars, starts, ends, changed = _rewrite(chars, starts, ends)
        if not changed:
            break
        chars, starts, ends = _separate(chars, starts, ends)
    return Normalized("".join(chars), text, tuple(starts), tuple(ends))
