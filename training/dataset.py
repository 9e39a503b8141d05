"""Build the train/valid/test files of datasets/build/ from the seed and corpus data.

`build_dataset` is the plain function behind `jingwang build-dataset`. It

1. loads and validates every item (seed positives and negatives, the real-text corpus),
2. groups near-duplicates (character 5-gram Jaccard >= 0.7, found exactly by prefix
   filtering) so a group never straddles two splits,
3. splits groups 80/10/10, stratified by each item's rarest label (or, for benign items,
   by where it came from), so every label lands in every split,
4. adds one evasion copy (`training.augment.evade`) of every train item, positive and
   negative alike, so that script, spacing or homophones never signal a label, and writes
   an evasion copy of the whole test split to measure evasion recall,
5. writes JSON Lines plus a manifest (counts, sha256 of each file, seed, normaliser version).

Same inputs and seed give byte-identical outputs: nothing depends on time, dict order of
the file system or Python's randomised `hash`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models.errors import InputError
from models.labels import LABELS, TAXONOMY_VERSION, parse_labels

KINDS = ("positive", "evasion", "hard_negative", "easy_negative")
POSITIVE_KINDS = frozenset({"positive", "evasion"})
SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = {"test": 0.10, "valid": 0.10}
CORPUS_FILES = ("benign.jsonl", "flagged.jsonl")
SHINGLE = 5
NEAR_DUPLICATE_JACCARD = 0.7
EVASION_TRANSFORMS = 3
# Fields copied into build rows; provenance beyond these stays in the source files.
KEEP_FIELDS = ("id", "text", "labels", "kind", "source", "register")


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON Lines data file and validate every record.

    Each non-blank line must be an object with a non-empty string `id` and `text` and a
    `labels` list of known label names (empty for benign); `kind`, when present, must be
    one of KINDS and agree with the labels. Raises `InputError` (a `ValueError`) whose
    message starts with ``file:line`` for the first bad line.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", source=str(path), line=lineno) from None
            _validate_row(row, str(path), lineno)
            rows.append(row)
    return rows


def _validate_row(row: Any, source: str, line: int) -> None:
    if not isinstance(row, dict):
        raise InputError("a record must be a JSON object", source=source, line=line)
    for field in ("id", "text"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise InputError(f"{field!r} must be a non-empty string", source=source, line=line)
    labels = row.get("labels")
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise InputError("'labels' must be a list of label names", source=source, line=line)
    try:
        parse_labels(labels)
    except ValueError as exc:
        raise InputError(str(exc), source=source, line=line) from None
    if len(set(labels)) != len(labels):
        raise InputError(f"repeated label in {labels}", source=source, line=line)
    kind = row.get("kind")
    if kind is None:
        return
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}", source=source, line=line)
    if (kind in POSITIVE_KINDS) != bool(labels):
        want = "non-empty" if kind in POSITIVE_KINDS else "empty"
        raise InputError(f"kind {kind!r} needs {want} labels, got {labels}", source=source, line=line)


def _input_files(seed_dir: Path, corpus_dir: Path) -> list[Path]:
    files = sorted((seed_dir / "positives").glob("*.jsonl"))
    files += sorted((seed_dir / "negatives").glob("*.jsonl"))
    files += [corpus_dir / name for name in CORPUS_FILES if (corpus_dir / name).exists()]
    return files


def _input_key(path: Path, seed_dir: Path) -> str:
    """Manifest name of an input: seed/<folder>/<file> or corpus/<file>."""
    if path.parent.parent == seed_dir:
        return f"seed/{path.parent.name}/{path.name}"
    return f"corpus/{path.name}"


def _stratum(row: dict[str, Any], path: Path, label_counts: Counter[str]) -> str:
    if row["labels"]:
        # The rarest label decides, so that rare labels are spread over all splits first.
        return "label:" + min(row["labels"], key=lambda lab: (label_counts[lab], lab))
    if path.parent.name == "negatives":
        return f"negative:{path.stem}"
    return f"corpus:{row.get('source', path.stem)}:{row.get('kind', 'easy_negative')}"


def _dedup_key(text: str) -> str:
    """Light normalisation for near-duplicate detection: NFKC, lower case, no spaces/punct."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _shingles(text: str) -> set[str]:
    key = _dedup_key(text) or text
    if len(key) <= SHINGLE:
        return {key}
    return {key[i : i + SHINGLE] for i in range(len(key) - SHINGLE + 1)}


def near_duplicate_pairs(
    texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD
) -> list[tuple[int, int]]:
    """All index pairs whose character-5-gram Jaccard similarity is >= threshold.

    Exact, not sampled: prefix filtering (Chaudhuri et al. 2006) only generates candidate
    pairs that share one of their rarest shingles, which every qualifying pair must do,
    then each candidate is verified.
    """
    sets = [_shingles(t) for t in texts]
    freq: Counter[str] = Counter(s for shingle_set in sets for s in shingle_set)
    index: dict[str, list[int]] = defaultdict(list)
    pairs: set[tuple[int, int]] = set()
    for i, shingle_set in enumerate(sets):
        ordered = sorted(shingle_set, key=lambda s: (freq[s], s))
        prefix = len(ordered) - math.ceil(threshold * len(ordered)) + 1
        candidates: set[int] = set()
        for s in ordered[:prefix]:
            candidates.update(index[s])
            index[s].append(i)
        for j in candidates:
            other = sets[j]
            inter = len(shingle_set & other)
            if inter >= threshold * (len(shingle_set) + len(other) - inter):
                pairs.add((j, i))
    return sorted(pairs)


def _groups(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def _same_document_pairs(documents: list[str | None]) -> list[tuple[int, int]]:
    """Link passages cut from one source document (same `url`): they share a split."""
    first: dict[str, int] = {}
    pairs = []
    for i, doc in enumerate(documents):
        if doc is None:
            continue
        if doc in first:
            pairs.append((first[doc], i))
        else:
            first[doc] = i
    return pairs


def _stable_hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def _assign_splits(
    strata: list[str], group_of: list[int], ids: list[str], seed: int
) -> list[str]:
    """Give each near-duplicate group one split, filling test then valid per stratum."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of):
        members[g].append(i)
    # A group containing any labelled item is placed by its label, so that a positive
    # near-copied in a benign text still counts towards its label's share of each split.
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for g, idx in members.items():
        by_stratum[min((strata[i] for i in idx), key=lambda s: (not s.startswith("label:"), s))].append(g)
    split_of_group: dict[int, str] = {}
    for stratum in sorted(by_stratum):
        groups = sorted(by_stratum[stratum], key=lambda g: _stable_hash(seed, ids[g]))
        total = sum(len(members[g]) for g in groups)
        filled = Counter[str]()
        for g in groups:
            for split in ("test", "valid", "train"):
                # Take the group if the split is below its share (train takes the rest);
                # math.ceil gives small strata at least one item in test and valid.
                if split == "train" or filled[split] < math.ceil(SPLIT_FRACTIONS[split] * total):
                    split_of_group[g] = split
                    filled[split] += len(members[g])
                    break
    return [split_of_group[g] for g in group_of]


def _load_evade() -> Any:
    try:
        from training.augment import evade
    except ImportError as exc:
        raise ValueError(
            f"augmentation needs training.augment.evade ({exc}); build with augment=False"
        ) from exc
    return evade


def _source_digests() -> dict[str, str]:
    """sha256 of the code evaded copies depend on: `evade` draws its spellings from the
    normaliser's tables, so either file changing changes the augmented splits."""
    digests = {}
    for name in ("models.normalize", "training.augment"):
        # import_module, not attribute access: models/__init__ re-exports a `normalize` function.
        source = Path(str(importlib.import_module(name).__file__))
        digests[name] = hashlib.sha256(source.read_bytes()).hexdigest()
    return digests


def _normalizer_version() -> str:
    try:
        from models.normalize import NORMALIZER_VERSION
    except ImportError:
        return "unavailable"
    return str(NORMALIZER_VERSION)


def _evasion_copy(row: dict[str, Any], evade: Any, seed: int, tag: str) -> dict[str, Any] | None:
    """An evaded copy of row that differs from it, or None when evade cannot change it."""
    for attempt in range(4):
        rng = random.Random(_stable_hash(seed, tag, row["id"], attempt))
        text = evade(row["text"], rng, EVASION_TRANSFORMS + attempt)
        if text != row["text"] and text.strip():
            copy = dict(row)
            copy.update(id=f"{row['id']}~{tag}", text=text, augmented_from=row["id"])
            return copy
    return None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _label_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = {label.value: 0 for label in LABELS}
    counts["benign"] = 0
    for r in rows:
        for label in r["labels"]:
            counts[label] += 1
        if not r["labels"]:
            counts["benign"] += 1
    return counts


def build_dataset(
    seed_dir: str | Path,
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 13,
    augment: bool = True,
) -> dict[str, Any]:
    """Build datasets/build-style files from seed and corpus data; return the manifest counts.

    seed_dir holds positives/*.jsonl and negatives/*.jsonl; corpus_dir holds benign.jsonl
    (and flagged.jsonl, real ads found while reviewing the corpus). Writes train, valid,
    test (+ test_evasion when augment) .jsonl and manifest.json into out_dir. Raises
    `InputError` (a ValueError naming file:line) for malformed input, duplicate ids, or
    the same text with conflicting labels.
    """
    seed_dir, corpus_dir, out_dir = Path(seed_dir), Path(corpus_dir), Path(out_dir)
    for folder in (seed_dir, corpus_dir):
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder")
    files = _input_files(seed_dir, corpus_dir)
    # Without positives the build would still "succeed", with labels absent from every split.
    if not any(p.parent == seed_dir / "positives" for p in files):
        raise InputError(f"no positives: {seed_dir / 'positives'} holds no .jsonl file")
    evade = _load_evade() if augment else None

    loaded: list[tuple[Path, dict[str, Any]]] = []
    for path in files:
        loaded.extend((path, row) for row in load_jsonl(path))

    rows: list[dict[str, Any]] = []
    row_files: list[Path] = []
    documents: list[str | None] = []
    seen_ids: dict[str, Path] = {}
    seen_texts: dict[str, dict[str, Any]] = {}
    exact_duplicates = 0
    for path, row in loaded:
        if row["id"] in seen_ids:
            raise InputError(f"duplicate id {row['id']!r} (also in {seen_ids[row['id']]})", source=str(path))
        seen_ids[row["id"]] = path
        document = row.get("url")
        row = {k: row[k] for k in KEEP_FIELDS if k in row}
        row.setdefault("kind", "positive" if row["labels"] else "easy_negative")
        row["labels"] = sorted(row["labels"], key=lambda lab: [v.value for v in LABELS].index(lab))
        key = _dedup_key(row["text"])
        if key in seen_texts:
            first = seen_texts[key]
            if first["labels"] != row["labels"]:
                raise InputError(
                    f"text of {row['id']!r} repeats {first['id']!r} with other labels "
                    f"({row['labels']} vs {first['labels']})",
                    source=str(path),
                )
            exact_duplicates += 1
            continue
        seen_texts[key] = row
        rows.append(row)
        row_files.append(path)
        documents.append(document)

    label_counts = Counter(label for r in rows for label in r["labels"])
    strata = [_stratum(r, p, label_counts) for r, p in zip(rows, row_files, strict=True)]
    pairs = near_duplicate_pairs([r["text"] for r in rows])
    group_of = _groups(len(rows), pairs + _same_document_pairs(documents))
    split_of = _assign_splits(strata, group_of, [r["id"] for r in rows], seed)

    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row, split in zip(rows, split_of, strict=True):
        out[split].append(row)
    skipped_evasion = 0
    if evade is not None:
        augmented = []
        for row in out["train"]:
            copy = _evasion_copy(row, evade, seed, "aug")
            if copy is None:
                skipped_evasion += 1
            else:
                augmented.append(copy)
        out["train"] += augmented
        out["test_evasion"] = []
        for row in out["test"]:
            copy = _evasion_copy(row, evade, seed, "evasion")
            if copy is None:
                skipped_evasion += 1
            else:
                out["test_evasion"].append(copy)

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "generated_by": "training.dataset.build_dataset (jingwang build-dataset); do not edit",
        "seed": seed,
        "augment": augment,
        "taxonomy_version": TAXONOMY_VERSION,
        "normalizer_version": _normalizer_version(),
        "near_duplicate": {"shingle": SHINGLE, "jaccard": NEAR_DUPLICATE_JACCARD},
        "evasion_transforms": EVASION_TRANSFORMS if augment else 0,
        "augment_sources": _source_digests() if augment else {},
        "inputs": {
            _input_key(p, seed_dir): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
        },
        "items": len(rows),
        "exact_duplicates_dropped": exact_duplicates,
        "near_duplicate_pairs": len(pairs),
        "near_duplicate_groups": sum(1 for c in Counter(group_of).values() if c > 1),
        "evasion_copies_skipped": skipped_evasion,
        "splits": {},
        "files": {},
    }
    for split, split_rows in out.items():
        # Deterministic shuffle so that a file read top-down is not grouped by source.
        split_rows.sort(key=lambda r: _stable_hash(seed, "order", r["id"]))
        name = f"{split}.jsonl"
        manifest["files"][name] = _write_jsonl(out_dir / name, split_rows)
        manifest["splits"][split] = {
            "items": len(split_rows),
            "labels": _label_counts(split_rows),
            "kinds": {k: sum(1 for r in split_rows if r["kind"] == k) for k in KINDS},
        }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    _update_datasheet(out_dir.parent / "README.md", manifest)
    return manifest


DATASHEET_START = "<!-- counts:start (generated by build_dataset from build/manifest.json) -->"
DATASHEET_END = "<!-- counts:end -->"


def datasheet_tables(manifest: dict[str, Any]) -> str:
    """Markdown tables of items per label and per kind in each split, from a manifest."""
    splits = list(manifest["splits"])
    rows = [label.value for label in LABELS] + ["benign"]
    lines = ["| label | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(str(manifest["splits"][s]["labels"][row]) for s in splits) + " |")
    lines.append("| **items** | " + " | ".join(str(manifest["splits"][s]["items"]) for s in splits) + " |")
    lines += ["", "| kind | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(str(manifest["splits"][s]["kinds"][kind]) for s in splits) + " |")
    return "\n".join(lines)


def _update_datasheet(readme: Path, manifest: dict[str, Any]) -> None:
    """Refresh the generated count tables of the datasheet, when it has the markers."""
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(DATASHEET_START), text.find(DATASHEET_END)
    if start == -1 or end < start:
        return
    body = f"{DATASHEET_START}\n{datasheet_tables(manifest)}\n"
    readme.write_text(text[:start] + body + text[end:], encoding="utf-8")
