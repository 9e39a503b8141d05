"""Validate the hand-written seed data under datasets/seed/ (every *.jsonl, any sub-folder).

The checks guard what training relies on: valid rows and labels, unique ids, enough
positives per label, no copies or near-copies (which would inflate the apparent size of
the set and leak between train/validation splits), and no real-looking contact numbers.
"""

import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from models.labels import LABELS

SEED_DIR = Path(__file__).resolve().parents[2] / "datasets" / "seed"
POSITIVES_DIR = SEED_DIR / "positives"

KINDS = {"positive", "evasion", "hard_negative", "easy_negative"}
POSITIVE_KINDS = {"positive", "evasion"}
REGISTERS = {
    "classified",
    "forum",
    "tieba",
    "group_chat",
    "moments",
    "comment",
    "private_message",
    "agency_site",
    "seo_spam",
}
# Issue 2 minimums: positives carrying each label (a multi-label row counts for each label).
MIN_POSITIVES = {
    "trafficking": 130,
    "child_sale": 130,
    "illegal_adoption": 130,
    "surrogacy": 130,
    "document_fraud": 90,
    "organ_trade": 90,
}
MIN_POSITIVES_TOTAL = 900
NEAR_DUPLICATE_JACCARD = 0.8
NGRAM = 5

# A run of 11 digits, optionally split by spaces, dots or dashes (138-0000-1234, 139 0000 0000).
ELEVEN_DIGITS = re.compile(r"(?<![\d])\d(?:[\s.\-]?\d){10}(?![\d])")
# Digits written right after a QQ / WeChat marker.
ID_AFTER_MARKER = re.compile(
    r"(?:qq|扣扣|企鹅|wx|vx|微信|薇信|v信|weixin)[^\d\n]{0,4}(\d[\d\s\-]{4,14}\d)", re.IGNORECASE
)


def _rows() -> list[tuple[Path, int, dict]]:
    rows = []
    for path in sorted(SEED_DIR.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append((path, line_no, json.loads(line)))
    return rows


@pytest.fixture(scope="module")
def rows() -> list[tuple[Path, int, dict]]:
    """Every row of every seed file, with where it came from."""
    return _rows()


def _is_obviously_fake(digits: str) -> bool:
    """Fake contact numbers carry a run of zeros (138-0000-1234) or are one repeated digit."""
    return "0000" in digits or len(set(digits)) <= 2


def _ngrams(text: str) -> set[str]:
    text = re.sub(r"\s+", "", text)
    if len(text) < NGRAM:
        return {text}
    return {text[i : i + NGRAM] for i in range(len(text) - NGRAM + 1)}


def _near_duplicates(texts: list[str]) -> list[tuple[float, str, str]]:
    """Pairs with character 5-gram Jaccard >= the limit, found through an inverted index."""
    grams = [_ngrams(t) for t in texts]
    index: dict[str, list[int]] = defaultdict(list)
    for i, gram_set in enumerate(grams):
        for gram in gram_set:
            index[gram].append(i)
    found = []
    for i, gram_set in enumerate(grams):
        shared: Counter[int] = Counter()
        for gram in gram_set:
            shared.update(j for j in index[gram] if j > i)
        for j, common in shared.items():
            jaccard = common / (len(gram_set) + len(grams[j]) - common)
            if jaccard >= NEAR_DUPLICATE_JACCARD:
                found.append((round(jaccard, 2), texts[i], texts[j]))
    return found


def test_seed_positive_files_exist() -> None:
    assert sorted(p.name for p in POSITIVES_DIR.glob("*.jsonl")), f"no *.jsonl in {POSITIVES_DIR}"


def test_rows_are_valid(rows: list[tuple[Path, int, dict]]) -> None:
    problems = []
    for path, line_no, row in rows:
        where = f"{path.relative_to(SEED_DIR)}:{line_no}"
        if not isinstance(row.get("id"), str) or not row["id"]:
            problems.append(f"{where}: missing id")
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            problems.append(f"{where}: missing text")
        labels = row.get("labels")
        if not isinstance(labels, list) or any(label not in LABELS for label in labels):
            problems.append(f"{where}: bad labels {labels!r}")
        elif len(set(labels)) != len(labels):
            problems.append(f"{where}: repeated label {labels!r}")
        kind = row.get("kind")
        if kind is not None and kind not in KINDS:
            problems.append(f"{where}: bad kind {kind!r}")
        if kind in POSITIVE_KINDS and not labels:
            problems.append(f"{where}: {kind} row without labels")
        if kind in KINDS - POSITIVE_KINDS and labels:
            problems.append(f"{where}: {kind} row with labels {labels!r}")
        register = row.get("register")
        if register is not None and (not isinstance(register, str) or not register):
            problems.append(f"{where}: bad register {register!r}")
        if path.is_relative_to(POSITIVES_DIR):
            # The positives brief fixes a closed set of registers; negatives may use topic names.
            if register not in REGISTERS:
                problems.append(f"{where}: register {register!r} not one of {sorted(REGISTERS)}")
            if kind not in POSITIVE_KINDS:
                problems.append(f"{where}: kind {kind!r} in positives/")
    assert not problems, "\n".join(problems[:50])


def test_ids_are_unique(rows: list[tuple[Path, int, dict]]) -> None:
    counts = Counter(row["id"] for _, _, row in rows)
    repeated = [row_id for row_id, n in counts.items() if n > 1]
    assert not repeated, f"repeated ids: {repeated[:20]}"


def test_positive_counts_meet_minimums(rows: list[tuple[Path, int, dict]]) -> None:
    positives = [row for path, _, row in rows if path.is_relative_to(POSITIVES_DIR)]
    per_label = Counter(label for row in positives for label in row["labels"])
    short = {label: per_label[label] for label, n in MIN_POSITIVES.items() if per_label[label] < n}
    assert not short, f"too few positives: {short} (minimums {MIN_POSITIVES})"
    assert len(positives) >= MIN_POSITIVES_TOTAL


def test_positives_include_evasion_and_many_registers(rows: list[tuple[Path, int, dict]]) -> None:
    positives = [row for path, _, row in rows if path.is_relative_to(POSITIVES_DIR)]
    evasion_share = sum(row["kind"] == "evasion" for row in positives) / len(positives)
    assert 0.10 <= evasion_share <= 0.25, f"evasion share {evasion_share:.2f}"
    registers = Counter(row.get("register") for row in positives)
    assert set(registers) == REGISTERS, f"registers used: {registers}"


def test_positive_rows_match_their_file(rows: list[tuple[Path, int, dict]]) -> None:
    # positives/<label>.jsonl holds rows focused on <label>: ids pos-<label>-NNNN, label present.
    problems = []
    for path, line_no, row in rows:
        if not path.is_relative_to(POSITIVES_DIR):
            continue
        focus = path.stem
        if focus not in row["labels"]:
            problems.append(f"{path.name}:{line_no}: labels {row['labels']} lack {focus!r}")
        if not re.fullmatch(rf"pos-{focus}-\d{{4}}", row["id"]):
            problems.append(f"{path.name}:{line_no}: id {row['id']!r}")
        if not 8 <= len(row["text"]) <= 300:
            problems.append(f"{path.name}:{line_no}: {len(row['text'])} characters, want 8-300")
    assert not problems, "\n".join(problems[:50])


def test_no_exact_duplicate_texts(rows: list[tuple[Path, int, dict]]) -> None:
    counts = Counter(re.sub(r"\s+", "", row["text"]) for _, _, row in rows)
    repeated = [text for text, n in counts.items() if n > 1]
    assert not repeated, f"duplicate texts: {repeated[:10]}"


@pytest.mark.parametrize("folder", sorted({p.parent for p in SEED_DIR.rglob("*.jsonl")}))
def test_no_near_duplicates_within_folder(folder: Path) -> None:
    # Checked per folder: a hard negative may deliberately sit close to a positive.
    texts = [row["text"] for path, _, row in _rows() if path.parent == folder]
    found = _near_duplicates(texts)
    assert not found, "near duplicates:\n" + "\n".join(map(str, found[:10]))


def test_contact_numbers_are_obviously_fake(rows: list[tuple[Path, int, dict]]) -> None:
    suspicious = []
    for _, _, row in rows:
        # NFKC folds full-width digits, which evasion rows use.
        text = unicodedata.normalize("NFKC", row["text"])
        for match in [*ELEVEN_DIGITS.finditer(text), *ID_AFTER_MARKER.finditer(text)]:
            digits = re.sub(r"\D", "", match.group(match.lastindex or 0))
            if len(digits) >= 5 and not _is_obviously_fake(digits):
                suspicious.append((row["id"], match.group(0)))
    assert not suspicious, f"real-looking numbers: {suspicious[:20]}"


@pytest.mark.parametrize(
    ("digits", "fake"),
    [("13800001234", True), ("13900000000", True), ("100008888", True), ("13812345678", False)],
)
def test_fake_number_rule(digits: str, fake: bool) -> None:
    assert _is_obviously_fake(digits) is fake


def test_near_duplicate_rule() -> None:
    base = "出售健康男宝三个月大可上户口价格私聊诚意者来"
    assert _near_duplicates([base, base + "哦"])
    assert not _near_duplicates([base, "捐卵补贴高，二十到三十岁女性，包吃住"])
