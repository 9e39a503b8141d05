"""Block terms, context rules and allow-phrases, matched on normalised text.

Term files live in ``datasets/lexicon/``: one ``<label>.tsv`` per label (see
`models.labels.LABELS`) plus ``allow.tsv``. Each file starts with a comment describing
its format::

    # rule_id <TAB> weight <TAB> terms <TAB> context <TAB> window <TAB> unless
    cs.infant_price	0.7	男婴|女婴	价格|{price}	10	警方|法院|奶粉

* ``terms``: alternatives separated by ``|``; written in plain Chinese, they are passed
  through `models.normalize.normalize` on load, so 賣腎 and 卖肾 are the same term.
* ``context`` (optional): alternatives that must occur within ``window`` characters
  (default 10) before or after the term in the normalised text; empty for a bare term.
* Context and unless alternatives may be a pattern token: ``{price}`` (an amount: 8万,
  3.5w, 20000元, 三十万, ¥5000) or ``{contact}`` (微信, qq, 电话 or a 7+ digit number).
  Bare 万/元 would match 千万/万一/元旦.
* ``unless`` (optional): alternatives that cancel the hit when they occur within the
  window, or within `UNLESS_WINDOW` characters if that is larger (news and policy
  wording: 警方, 判处, 打击 ...).
* ``weight`` in [0, 1]: how strongly one hit supports the label. Strong ad patterns are
  about 0.9; bare ambiguous terms (代孕, 拐卖, 器官) 0.0-0.3, because news and policy
  text mention them all the time and a bare term must not send an item to review alone.
  A hit whose term is inside quotation marks has its weight multiplied by
  `QUOTED_FACTOR`.

``allow.tsv`` has one phrase per line (``#`` comments allowed). A block-term occurrence
that lies inside an allow-phrase occurrence is ignored (送养小猫 beats 送养, 出售婴儿车
beats 出售 + 婴儿), so allow-phrases win over the shorter block terms they contain.

Slang (蓝宝/粉宝, 腰子, 营养费) is handled here, with context rules, rather than in the
normaliser: those words have ordinary meanings (烤腰子) that rewriting would destroy.

Spans in `Hit` are offsets into the ORIGINAL text (via `Normalized.to_original`), so
evidence shows what the user actually wrote (代-孕, 帶孕, dai yun).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from models.labels import LABELS, Label
from models.normalize import NORMALIZER_VERSION, Normalized, normalize

__all__ = [
    "CUSTOM_WEIGHT", "DEFAULT_DIRECTORY", "DEFAULT_WINDOW", "PATTERN_TOKENS", "Hit", "Lexicon",
    "Rule",
]

DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "datasets" / "lexicon"
DEFAULT_WINDOW = 10
CUSTOM_WEIGHT = 0.9
"""Weight of tenant terms added with `Lexicon.with_terms`: a tenant adds a term to flag it."""

LEXICON_FORMAT = "2"
UNLESS_WINDOW = 30
"""``unless`` words are looked for at least this far from the term: news wording
(警方通报, 法院审理) often opens the sentence, far from the quoted ad phrase."""
QUOTED_FACTOR = 0.4
"""Weight factor for a hit inside quotation marks (“出售男婴”, 「代孕包成功」): quoting an
ad phrase is what news, warnings and platform rules do; ads rarely quote themselves."""
_QUOTED = re.compile(r"[“「『\"‘][^“”「」『』\"‘’\n]{1,40}[”」』\"’]")

PATTERN_TOKENS: dict[str, re.Pattern[str]] = {
    "{price}": re.compile(
        r"(?:[¥$]\s?\d|\d+(?:\.\d+)?\s?个?(?:万|w|k|元|块|千)"
        r"|[一二两三四五六七八九十百几]+[十百]?个?(?:千|万|w))"
    ),
    "{contact}": re.compile(r"微信|qq|电话|\d{7,}"),
}
"""Named patterns usable as context/unless alternatives (on normalised text)."""
ALLOW_FILE = "allow.tsv"


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule match. ``start``/``end`` index the ORIGINAL text."""

    label: Label
    term: str
    rule_id: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True, slots=True)
class Rule:
    """A block rule: any of `terms`, optionally with any of `context` within `window`."""

    rule_id: str
    label: Label
    weight: float
    terms: tuple[str, ...]
    context: tuple[str, ...] = ()
    window: int = DEFAULT_WINDOW
    unless: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0 or math.isnan(self.weight):
            raise ValueError(f"rule {self.rule_id!r}: weight {self.weight} not in [0, 1]")
        if not self.terms or not all(self.terms):
            raise ValueError(f"rule {self.rule_id!r}: needs at least one non-empty term")
        if self.window < 0:
            raise ValueError(f"rule {self.rule_id!r}: window {self.window} is negative")


def _norm_term(term: str) -> str:
    return normalize(term).text


def _split_alternatives(field: str) -> tuple[str, ...]:
    out = []
    for raw in field.split("|"):
        raw = raw.strip()
        if raw.startswith("{") and raw.endswith("}"):
            if raw not in PATTERN_TOKENS:
                known = ", ".join(PATTERN_TOKENS)
                raise ValueError(f"unknown pattern token {raw}; known: {known}")
            out.append(raw)
        elif term := _norm_term(raw):
            out.append(term)
    return tuple(dict.fromkeys(out))


def _parse_rules(path: Path, label: Label) -> list[Rule]:
    rules = []
    seen: set[str] = set()
    for lineno, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.rstrip("\n\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{path.name} line {lineno}"
        if not 3 <= len(fields) <= 6:
            raise ValueError(
                f"{where}: expected 3-6 tab-separated fields "
                f"(rule_id, weight, terms[, context[, window[, unless]]]), got {len(fields)}"
            )
        rule_id = fields[0].strip()
        if not rule_id or rule_id in seen:
            raise ValueError(f"{where}: missing or duplicate rule id {rule_id!r}")
        seen.add(rule_id)
        try:
            weight = float(fields[1])
        except ValueError:
            raise ValueError(f"{where}: weight {fields[1]!r} is not a number") from None
        try:
            terms = _split_alternatives(fields[2])
            context = _split_alternatives(fields[3]) if len(fields) > 3 else ()
            unless = _split_alternatives(fields[5]) if len(fields) > 5 else ()
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if any(t in PATTERN_TOKENS for t in terms):
            raise ValueError(f"{where}: pattern tokens are allowed in context/unless only")
        window = DEFAULT_WINDOW
        if len(fields) > 4 and fields[4].strip():
            try:
                window = int(fields[4])
            except ValueError:
                raise ValueError(f"{where}: window {fields[4]!r} is not an integer") from None
        try:
            rules.append(Rule(rule_id, label, weight, terms, context, window, unless))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return rules


def _parse_allow(path: Path) -> list[str]:
    phrases = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" in line:
            raise ValueError(f"{path.name} line {lineno}: allow phrases take one field, got a tab")
        phrase = _norm_term(line)
        if phrase:
            phrases.append(phrase)
    return phrases


class Lexicon:
    """An immutable set of block rules and allow-phrases with an Aho-Corasick matcher."""

    def __init__(self, rules: Iterable[Rule], allow: Iterable[str] = ()) -> None:
        import ahocorasick

        self.rules: tuple[Rule, ...] = tuple(rules)
        self.allow: tuple[str, ...] = tuple(dict.fromkeys(p for p in allow if p))
        ids = [r.rule_id for r in self.rules]
        if len(ids) != len(set(ids)):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        by_term: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for term in rule.terms:
                by_term.setdefault(term, []).append(rule)
        automaton = ahocorasick.Automaton()
        for term, term_rules in by_term.items():
            automaton.add_word(term, (term, tuple(term_rules), False))
        for phrase in self.allow:
            if phrase in by_term:
                value = (phrase, tuple(by_term[phrase]), True)
            else:
                value = (phrase, (), True)
            automaton.add_word(phrase, value)
        self._automaton = automaton
        self._empty = not by_term and not self.allow
        if not self._empty:
            automaton.make_automaton()
        digest = hashlib.sha256()
        digest.update(f"lexicon {LEXICON_FORMAT} normalizer {NORMALIZER_VERSION}\n".encode())
        for rule in sorted(self.rules, key=lambda r: r.rule_id):
            line = "\t".join(
                [rule.rule_id, rule.label.value, repr(rule.weight), "|".join(rule.terms),
                 "|".join(rule.context), str(rule.window), "|".join(rule.unless)]
            )
            digest.update(line.encode() + b"\n")
        for phrase in sorted(self.allow):
            digest.update(b"allow\t" + phrase.encode() + b"\n")
        self._sha256 = digest.hexdigest()
        # Context and unless words are found once per text by a second automaton; a rule
        # then only looks at the (few) words found, not at its (up to ~100) alternatives.
        words = {w for r in self.rules for w in (*r.context, *r.unless) if w not in PATTERN_TOKENS}
        self._word_automaton = ahocorasick.Automaton()
        for word in words:
            self._word_automaton.add_word(word, word)
        if words:
            self._word_automaton.make_automaton()
        self._has_words = bool(words)
        self._lookup: dict[str, tuple[_Alternatives, _Alternatives]] = {
            r.rule_id: (_Alternatives.of(r.context), _Alternatives.of(r.unless)) for r in self.rules
        }

    # ----------------------------------------------------------------- construction

    @classmethod
    def load(cls, directory: Path | None = None) -> Lexicon:
        """Load ``<label>.tsv`` files and ``allow.tsv`` from `directory` (default shipped).

        Raises `ValueError` naming the file and line of a malformed entry, and for a
        directory without any term file.
        """
        directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        if not directory.is_dir():
            raise ValueError(f"lexicon directory {directory} does not exist")
        known = {f"{label.value}.tsv" for label in LABELS} | {ALLOW_FILE}
        unknown = sorted(p.name for p in directory.glob("*.tsv") if p.name not in known)
        if unknown:
            raise ValueError(
                f"{directory}: unknown term file(s) {', '.join(unknown)}; "
                f"expected <label>.tsv for labels {', '.join(LABELS)} and {ALLOW_FILE}"
            )
        rules: list[Rule] = []
        found = False
        for label in LABELS:
            path = directory / f"{label.value}.tsv"
            if path.exists():
                found = True
                rules.extend(_parse_rules(path, label))
        allow_path = directory / ALLOW_FILE
        allow = _parse_allow(allow_path) if allow_path.exists() else []
        if not found:
            raise ValueError(f"{directory}: no <label>.tsv term files")
        return cls(rules, allow)

    def with_terms(
        self,
        block: Mapping[Label, Iterable[str]] | None = None,
        allow: Iterable[str] = (),
        *,
        weight: float = CUSTOM_WEIGHT,
    ) -> Lexicon:
        """Return a new Lexicon with extra (tenant) block terms and allow-phrases.

        Each block term becomes a bare rule ``custom:<label>:<term>`` with `weight`.
        Raises `ValueError` for an unknown label or an empty term.
        """
        rules = list(self.rules)
        existing = {r.rule_id for r in rules}
        for label, terms in (block or {}).items():
            try:
                label = Label(label)
            except ValueError:
                raise ValueError(f"unknown label {label!r}; known: {', '.join(LABELS)}") from None
            for term in terms:
                normalised = _norm_term(term)
                if not normalised:
                    raise ValueError(f"custom {label.value} term {term!r} is empty after normalising")
                rule_id = f"custom:{label.value}:{normalised}"
                if rule_id in existing:
                    continue
                existing.add(rule_id)
                rules.append(Rule(rule_id, label, weight, (normalised,)))
        extra_allow = []
        for phrase in allow:
            normalised = _norm_term(phrase)
            if not normalised:
                raise ValueError(f"custom allow phrase {phrase!r} is empty after normalising")
            extra_allow.append(normalised)
        return Lexicon(rules, [*self.allow, *extra_allow])

    # ----------------------------------------------------------------- identity

    @property
    def sha256(self) -> str:
        """Hex digest of the rules, allow-phrases and normaliser version (for artifacts)."""
        return self._sha256

    @property
    def version(self) -> str:
        """Short identifier for artifact metadata: ``<format>-<sha256 prefix>``."""
        return f"{LEXICON_FORMAT}-{self._sha256[:12]}"

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"Lexicon(rules={len(self.rules)}, allow={len(self.allow)}, version={self.version!r})"

    # ----------------------------------------------------------------- matching

    def scan(self, text: str) -> list[Hit]:
        """Normalise `text` and return its hits, spans in the original text."""
        return self.scan_normalized(normalize(text))

    def scan_normalized(self, n: Normalized) -> list[Hit]:
        """Return the hits in an already normalised text, spans in ``n.original``.

        Hits come in text order; an occurrence inside an allow-phrase occurrence is
        dropped. One occurrence can hit several rules (bare term and context rules).
        """
        text = n.text
        if self._empty or not text:
            return []
        occurrences = []
        allowed: list[tuple[int, int]] = []
        for end_index, (term, rules, is_allow) in self._automaton.iter(text):
            end = end_index + 1
            start = end - len(term)
            if is_allow:
                allowed.append((start, end))
            if rules:
                occurrences.append((start, end, term, rules))
        hits: list[Hit] = []
        seen: set[tuple[str, int, int]] = set()
        quoted: list[tuple[int, int]] | None = None  # found on first use
        found = _Found(text, self._word_automaton if self._has_words else None)
        for start, end, term, rules in occurrences:
            if allowed and _inside(start, end, allowed):
                continue
            for rule in rules:
                span = (start, end)
                context, unless = self._lookup[rule.rule_id]
                if rule.context:  # before `unless`: most terms lack their context
                    span = _context_span(found, start, end, rule.window, context, allowed)
                    if span is None:
                        continue
                if rule.unless:
                    reach = max(rule.window, UNLESS_WINDOW)
                    lo, hi = max(0, start - reach), end + reach
                    if next(iter(found.within(unless, lo, hi)), None) is not None:
                        continue
                key = (rule.rule_id, span[0], span[1])
                if key in seen:
                    continue
                seen.add(key)
                weight = rule.weight
                if quoted is None:
                    quoted = [m.span() for m in _QUOTED.finditer(text)]
                if quoted and _inside(start, end, quoted):
                    weight = round(weight * QUOTED_FACTOR, 4)
                o_start, o_end = n.to_original(*span)
                hits.append(Hit(rule.label, term, rule.rule_id, o_start, o_end, weight))
        hits.sort(key=lambda h: (h.start, h.end, h.rule_id))
        return hits


@dataclass(frozen=True, slots=True)
class _Alternatives:
    words: frozenset[str]
    tokens: tuple[str, ...]

    @classmethod
    def of(cls, alternatives: tuple[str, ...]) -> _Alternatives:
        tokens = tuple(a for a in alternatives if a in PATTERN_TOKENS)
        return cls(frozenset(a for a in alternatives if a not in PATTERN_TOKENS), tokens)


class _Found:
    """Context/unless words and pattern tokens in one normalised text, found on demand."""

    __slots__ = ("_automaton", "_text", "_words", "_tokens")

    def __init__(self, text: str, automaton) -> None:
        self._text = text
        self._automaton = automaton
        self._words: dict[str, list[tuple[int, int]]] | None = None
        self._tokens: dict[str, list[tuple[int, int]]] = {}

    def within(self, alternatives: _Alternatives, lo: int, hi: int) -> Iterable[tuple[int, int]]:
        """Spans of any of `alternatives` lying inside ``[lo, hi)``."""
        words = self._words
        if words is None:
            words = self._words = {}
            if self._automaton is not None:
                for end_index, word in self._automaton.iter(self._text):
                    words.setdefault(word, []).append((end_index + 1 - len(word), end_index + 1))
        for word in alternatives.words.intersection(words):
            for start, end in words[word]:
                if lo <= start and end <= hi:
                    yield start, end
        for token in alternatives.tokens:
            spans = self._tokens.get(token)
            if spans is None:
                spans = [m.span() for m in PATTERN_TOKENS[token].finditer(self._text)]
                self._tokens[token] = spans
            for start, end in spans:
                if lo <= start and end <= hi:
                    yield start, end


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def _context_span(
    found: _Found,
    start: int,
    end: int,
    window: int,
    context: _Alternatives,
    allowed: list[tuple[int, int]],
) -> tuple[int, int] | None:
    """Span from the term to the nearest context occurrence within the window, or None.

    A context word inside the term itself, or inside an allow-phrase, does not count.
    """
    best: tuple[int, int, int] | None = None  # (distance, start, end)
    lo, hi = max(0, start - window), end + window
    for pos, c_end in found.within(context, lo, hi):
        if (start <= pos and c_end <= end) or (allowed and _inside(pos, c_end, allowed)):
            continue
        candidate = (max(pos - end, start - c_end, 0), pos, c_end)
        # Ties go to the earlier occurrence: the words arrive in set order, which changes
        # with each process's string hashing, and evidence must not.
        if best is None or candidate < best:
            best = candidate
    if best is None:
        return None
    return min(start, best[1]), max(end, best[2])
