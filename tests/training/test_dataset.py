"""Tests of training/dataset.py: validation, near-duplicate grouping, splits, determinism.

Most tests build from a small invented seed folder in tmp_path; a second group checks the
committed datasets/build/ against its manifest, its inputs and the same split invariants;
the last group covers contact and name masking, passage splitting and the review keys of
datasets/corpus/extract_corpus.py and the committed corpus files.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from pathlib import Path

import pytest

from models.labels import LABELS
from training.dataset import build_dataset, load_jsonl, near_duplicate_pairs

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "datasets" / "build"
SPLITS = ("train", "valid", "test")
# Common characters to make invented texts that share no 5-gram by accident.
POOL = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处府研质"


def _text(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(POOL) for _ in range(24))


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def data_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An invented seed + corpus folder: 12 positives per label, negatives, near-duplicates."""
    rng = random.Random(7)
    seed, corpus = tmp_path / "seed", tmp_path / "corpus"
    for label in LABELS:
        rows = [
            {"id": f"pos-{label}-{i:04d}", "text": _text(rng, "出售"), "labels": [label], "kind": "positive"}
            for i in range(12)
        ]
        # A near-copy of the first row: it must land in the same split as its original.
        rows.append({**rows[0], "id": f"pos-{label}-0099", "text": rows[0]["text"] + "呀"})
        _write(seed / "positives" / f"{label}.jsonl", rows)
    negatives = [
        {"id": f"neg-news-{i:04d}", "text": _text(rng, "新闻"), "labels": [], "kind": "hard_negative"}
        for i in range(30)
    ]
    _write(seed / "negatives" / "news.jsonl", negatives)
    benign = [
        {"id": f"corpus-x-{i:04d}", "text": _text(rng, "日常"), "labels": [], "kind": "easy_negative",
         "source": "test", "url": f"doc{i // 3}"}
        for i in range(60)
    ]
    _write(corpus / "benign.jsonl", benign)
    return seed, corpus


def _read_split(folder: Path, split: str) -> list[dict]:
    return load_jsonl(folder / f"{split}.jsonl")


def test_load_jsonl_names_file_and_line_of_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "好的", "labels": []}\n{"id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:2: not valid JSON"):
        load_jsonl(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('["not", "an", "object"]', "must be a JSON object"),
        ('{"id": "a", "text": "", "labels": []}', "'text' must be a non-empty string"),
        ('{"id": "a", "text": "代孕", "labels": ["surrogacy_ad"]}', "unknown label 'surrogacy_ad'"),
        ('{"id": "a", "text": "代孕", "labels": "surrogacy"}', "'labels' must be a list"),
        ('{"id": "a", "text": "代孕", "labels": [], "kind": "positive"}', "needs non-empty labels"),
        ('{"id": "a", "text": "新闻", "labels": ["surrogacy"], "kind": "hard_negative"}', "needs empty labels"),
    ],
)
def test_load_jsonl_rejects_bad_records_with_location(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('\n{"id": "ok", "text": "好的", "labels": []}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"rows.jsonl:3: .*{message}"):
        load_jsonl(path)


def test_build_rejects_duplicate_ids_and_conflicting_labels(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, corpus = data_dirs
    extra = seed / "negatives" / "extra.jsonl"
    _write(extra, [{"id": "neg-news-0001", "text": "另一条不同的文字内容", "labels": []}])
    with pytest.raises(ValueError, match="duplicate id 'neg-news-0001'"):
        build_dataset(seed, corpus, tmp_path / "out", augment=False)
    first = load_jsonl(seed / "positives" / "surrogacy.jsonl")[0]
    _write(extra, [{"id": "neg-conflict", "text": first["text"], "labels": []}])
    with pytest.raises(ValueError, match="with other labels"):
        build_dataset(seed, corpus, tmp_path / "out", augment=False)


def test_build_refuses_missing_folders_and_missing_positives(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, corpus = data_dirs
    with pytest.raises(ValueError, match="is not a folder"):
        build_dataset(tmp_path / "nowhere", corpus, tmp_path / "out", augment=False)
    for path in (seed / "positives").glob("*.jsonl"):
        path.unlink()
    with pytest.raises(ValueError, match="no positives"):
        build_dataset(seed, corpus, tmp_path / "out", augment=False)
    assert not (tmp_path / "out").exists()


def test_build_is_deterministic(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, corpus = data_dirs
    build_dataset(seed, corpus, tmp_path / "a", augment=False)
    build_dataset(seed, corpus, tmp_path / "b", augment=False)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["manifest.json", "test.jsonl", "train.jsonl", "valid.jsonl"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_other_seed_gives_other_split(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, corpus = data_dirs
    build_dataset(seed, corpus, tmp_path / "a", augment=False, seed=13)
    build_dataset(seed, corpus, tmp_path / "b", augment=False, seed=14)
    assert {r["id"] for r in _read_split(tmp_path / "a", "test")} != {
        r["id"] for r in _read_split(tmp_path / "b", "test")
    }


def test_near_duplicates_and_documents_stay_in_one_split(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, corpus = data_dirs
    manifest = build_dataset(seed, corpus, tmp_path / "out", augment=False)
    split_of = {r["id"]: s for s in SPLITS for r in _read_split(tmp_path / "out", s)}
    for label in LABELS:
        assert split_of[f"pos-{label}-0000"] == split_of[f"pos-{label}-0099"]
    for i in range(0, 60, 3):
        assert len({split_of[f"corpus-x-{j:04d}"] for j in range(i, i + 3)}) == 1
    assert manifest["near_duplicate_pairs"] == len(LABELS)
    assert sum(manifest["splits"][s]["items"] for s in SPLITS) == manifest["items"] == 6 * 13 + 30 + 60


def test_every_label_in_every_split(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, corpus = data_dirs
    manifest = build_dataset(seed, corpus, tmp_path / "out", augment=False)
    for split in SPLITS:
        counts = manifest["splits"][split]["labels"]
        assert all(counts[label] > 0 for label in LABELS), (split, counts)
        assert counts["benign"] > 0


def test_near_duplicate_pairs_matches_brute_force() -> None:
    rng = random.Random(3)
    base = [_text(rng, "") for _ in range(15)]
    # Variants at several distances from their base, so both sides of 0.7 occur.
    texts = base + [b[: len(b) - k] + "啊" * k for b, k in zip(base, itertools.cycle([1, 3, 6, 10]), strict=False)]
    texts += ["短", "短", "代孕包成功"]

    def grams(t: str) -> set[str]:
        return {t[i : i + 5] for i in range(len(t) - 4)} or {t}

    brute = [
        (i, j)
        for i, j in itertools.combinations(range(len(texts)), 2)
        if len(grams(texts[i]) & grams(texts[j])) >= 0.7 * len(grams(texts[i]) | grams(texts[j]))
    ]
    assert near_duplicate_pairs(texts) == brute
    assert 0 < len(brute) < len(base)


def test_augmented_build_adds_evasion_copies(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("training.augment", reason="training.augment (evade) is not written yet")
    from models.normalize import normalize

    seed, corpus = data_dirs
    manifest = build_dataset(seed, corpus, tmp_path / "a", augment=True)
    build_dataset(seed, corpus, tmp_path / "b", augment=True)
    for name in ("train.jsonl", "test_evasion.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    test = {r["id"]: r for r in _read_split(tmp_path / "a", "test")}
    evasion = _read_split(tmp_path / "a", "test_evasion")
    assert len(evasion) + manifest["evasion_copies_skipped"] >= len(test)
    for row in evasion:
        source = test[row["augmented_from"]]
        assert row["text"] != source["text"]
        assert row["labels"] == source["labels"]
    # Evaded copies exist for positives and negatives alike: script never signals a label.
    train = _read_split(tmp_path / "a", "train")
    copies = [r for r in train if "augmented_from" in r]
    assert {bool(r["labels"]) for r in copies} == {True, False}
    # The normaliser undoes most of what evade does (a few transforms, e.g. dropped
    # characters, are deliberately not reversible).
    back = sum(normalize(r["text"]).text == normalize(test[r["augmented_from"]]["text"]).text for r in evasion)
    assert back >= 0.5 * len(evasion)


# The committed build: consistent with its manifest and free of cross-split near-duplicates.

needs_build = pytest.mark.skipif(not (BUILD / "manifest.json").exists(), reason="datasets/build not built")


@needs_build
def test_committed_build_matches_manifest() -> None:
    manifest = json.loads((BUILD / "manifest.json").read_text(encoding="utf-8"))
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((BUILD / name).read_bytes()).hexdigest() == digest, name
        rows = load_jsonl(BUILD / name)
        assert len(rows) == manifest["splits"][name.removesuffix(".jsonl")]["items"]
    for split in SPLITS:
        counts = manifest["splits"][split]["labels"]
        assert all(counts[label] > 0 for label in LABELS), (split, counts)


@needs_build
def test_committed_build_is_up_to_date_with_its_inputs() -> None:
    # Regression guard: seeds edited without rebuilding leave train/valid/test stale.
    manifest = json.loads((BUILD / "manifest.json").read_text(encoding="utf-8"))
    datasets = REPO / "datasets"
    current = sorted(
        [f"seed/{p.parent.name}/{p.name}" for p in (datasets / "seed").glob("*/*.jsonl")]
        + [f"corpus/{n}" for n in ("benign.jsonl", "flagged.jsonl") if (datasets / "corpus" / n).exists()]
    )
    assert sorted(manifest["inputs"]) == current, "input files changed: run `jingwang build-dataset`"
    stale = [
        name for name, digest in manifest["inputs"].items()
        if hashlib.sha256((datasets / name).read_bytes()).hexdigest() != digest
    ]
    assert not stale, f"{stale} changed since the last build: run `jingwang build-dataset`"


@needs_build
def test_committed_build_has_no_near_duplicates_across_splits() -> None:
    rows = [(s, r) for s in SPLITS for r in load_jsonl(BUILD / f"{s}.jsonl") if "augmented_from" not in r]
    pairs = near_duplicate_pairs([r["text"] for _, r in rows])
    crossing = [(rows[i][1]["id"], rows[j][1]["id"]) for i, j in pairs if rows[i][0] != rows[j][0]]
    assert not crossing, crossing[:10]


# datasets/corpus/extract_corpus.py is a script, not a package module: load it by path.


@pytest.fixture(scope="module")
def extract_corpus():
    import importlib.util

    spec = importlib.util.spec_from_file_location("extract_corpus", REPO / "datasets" / "corpus" / "extract_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("联系电话13912345678王先生", "联系电话13900000000王先生"),
        ("电话：159-1311-5938", "电话：159-0000-0000"),
        ("联系人张三135xxxx1234", "联系人张三135xxxx0000"),
        ("加微信：shop_abc88 咨询", "加微信：abc_test123 咨询"),
        ("qq: 6673744", "qq: 6670000"),
        ("发邮件到 someone.real@mail.cn 报名", "发邮件到 test@example.com 报名"),
        ("2018年共有1200人参加", "2018年共有1200人参加"),
    ],
)
def test_corpus_contact_details_are_masked(extract_corpus, raw: str, masked: str) -> None:
    assert extract_corpus.mask_contacts(raw) == masked


def test_corpus_passages_are_short_and_keep_all_text(extract_corpus) -> None:
    # inews stores some line breaks as a literal backslash-n; passages under 8 characters go.
    document = "第一段很短，只有一句话。\\n" + "这是一个很长的句子，" * 40 + "。第二句。\n\n最后一段也是一句话。\n短。"
    passages = extract_corpus.split_passages(document)
    assert all(len(p) <= extract_corpus.MAX_CHARS for p in passages)
    assert "".join(passages) == document.replace("\\n", "").replace("\n", "").removesuffix("短。")


CORPUS = REPO / "datasets" / "corpus"
# A masked name: one surname character + 某 (a few compound surnames keep two characters).
_MASKED_NAME = re.compile(r"[\u4e00-\u9fff]某")


def test_corpus_names_become_surname_and_mou(extract_corpus) -> None:
    # Invented names jieba does not know, as in news copy; titles and lone surnames stay.
    text = "被告人刘建华与李先生在石家庄见面。记者王晓梅报道，犯罪嫌疑人陈某已被刑拘。"
    assert extract_corpus.mask_names(text) == "被告人刘某与李先生在石家庄见面。记者王某报道，犯罪嫌疑人陈某已被刑拘。"
    tokens = [("主席", "n"), ("江", "nr"), ("泽民", "nr"), ("发表", "v"), ("江", "nr"), ("总书记", "n")]
    assert extract_corpus.mask_tagged_names(tokens) == "主席江某发表江总书记"


def test_corpus_tagged_names_are_masked_in_every_passage(extract_corpus) -> None:
    # People's Daily passages are cut from the unmasked line: a name cut by the boundary of a
    # passage must not leak its tail into the next one.
    line, spans = "甲乙丙丁江泽民戊己", [(4, 7)]
    assert extract_corpus._mask_spans("丙丁江泽民戊", 2, spans) == "丙丁江某戊"
    assert extract_corpus._mask_spans("甲乙丙丁江", 0, spans) == "甲乙丙丁江某"
    assert extract_corpus._mask_spans("泽民戊己", 5, spans) == "戊己"
    assert extract_corpus._mask_spans(line[:4], 0, spans) == line[:4]


def _corpus_sample(n: int) -> list[str]:
    # A fixed sample of the jieba-masked sources (People's Daily is masked from its own tags).
    rows = [r for r in load_jsonl(CORPUS / "benign.jsonl") if "199801" not in r["url"]]
    rows = sorted(rows, key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())[:n]
    return [r["text"] for r in rows] + [r["text"] for r in load_jsonl(CORPUS / "flagged.jsonl")]


def test_committed_corpus_has_no_unmasked_names(extract_corpus) -> None:
    # Masking again finds nothing: every name jieba can see is already surname + 某. The
    # sample must hold masked names, or an unmasked file with no names would pass too.
    texts = _corpus_sample(300)
    leftover = [(t, extract_corpus.mask_names(t)) for t in texts if extract_corpus.mask_names(t) != t]
    assert not leftover, leftover[:5]
    assert sum(len(_MASKED_NAME.findall(t)) for t in texts) >= 50
    excerpts = [json.loads(line)["excerpt"] for line in (CORPUS / "reviewed.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(bool(_MASKED_NAME.search(e)) for e in excerpts) >= 100


def test_committed_corpus_reviews_still_apply() -> None:
    # Reviews are keyed by the hash of the passage before name masking, the suffix of corpus
    # ids: every hard negative and flagged ad must still have its manual decision.
    reviewed = {}
    for line in (CORPUS / "reviewed.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        reviewed[row["hash"]] = row
    flagged = load_jsonl(CORPUS / "flagged.jsonl")
    assert len(flagged) == 4
    for row in flagged:
        decision = reviewed[row["id"].rsplit("-", 1)[1]]
        assert decision["decision"] == "positive" and decision["labels"] == row["labels"]
    hard = [r for r in load_jsonl(CORPUS / "benign.jsonl") if r["kind"] == "hard_negative"]
    assert len(hard) > 1000
    assert all(reviewed[r["id"].rsplit("-", 1)[1]]["decision"] == "negative" for r in hard)
    assert (CORPUS / "review_queue.jsonl").read_text(encoding="utf-8") == ""
