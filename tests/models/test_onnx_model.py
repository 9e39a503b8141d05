"""The onnxruntime backend: loading, refusing incomplete artifacts, batching, shipped-model behaviour."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.errors import ArtifactError
from models.labels import LABELS
from models.onnx_model import OnnxClassifier
from tests.utils.tiny_data import NEGATIVES, POSITIVES

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "artifacts" / "bert"
TEXTS = [text for text, _ in POSITIVES] + NEGATIVES + ["短", "代孕" * 80]


def _info(folder: Path) -> dict:
    return json.loads((folder / "artifact.json").read_text(encoding="utf-8"))


def test_probabilities_have_one_column_per_label(tiny_onnx_artifact: Path) -> None:
    model = OnnxClassifier.load(tiny_onnx_artifact, _info(tiny_onnx_artifact), threads=1)
    proba = model.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), len(LABELS))
    assert ((proba > 0) & (proba < 1)).all()
    assert model.predict_proba([]).shape == (0, len(LABELS))


def test_length_sorted_batches_return_rows_in_input_order(tiny_onnx_artifact: Path) -> None:
    info = _info(tiny_onnx_artifact)
    batched = OnnxClassifier.load(tiny_onnx_artifact, info, batch_size=4).logits(TEXTS)
    one_by_one = np.vstack([OnnxClassifier.load(tiny_onnx_artifact, info).logits([t]) for t in TEXTS[:6]])
    np.testing.assert_allclose(batched[:6], one_by_one, atol=1e-4)
    reversed_ = OnnxClassifier.load(tiny_onnx_artifact, info, batch_size=4).logits(TEXTS[::-1])
    np.testing.assert_allclose(batched, reversed_[::-1], atol=1e-4)


def test_batches_keep_within_the_row_and_token_limits(tiny_onnx_artifact: Path) -> None:
    model = OnnxClassifier.load(tiny_onnx_artifact, _info(tiny_onnx_artifact), batch_size=8, token_budget=64)
    lengths = [3, 120, 5, 5, 6, 30, 31, 4, 4, 4, 4, 4, 4, 4, 4, 4, 9, 200]
    batches = model._batches(lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 8
        assert len(batch) == 1 or len(batch) * width <= 64
        assert len(batch) == 1 or len(batch) * width <= 1.25 * sum(lengths[i] for i in batch)
    assert [200] in [[lengths[i] for i in b] for b in batches]  # over the budget alone: its own batch
    fixed = OnnxClassifier.load(tiny_onnx_artifact, _info(tiny_onnx_artifact), batch_size=8, token_budget=None)
    assert [len(b) for b in fixed._batches(lengths)] == [8, 8, 2]


def test_small_calls_can_run_on_a_single_threaded_session(
    tiny_onnx_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = _info(tiny_onnx_artifact)
    # The service sets the variable for its process (serve.main.load_screener): start clean.
    monkeypatch.delenv("JINGWANG_ORT_SMALL_CALL_THREADS", raising=False)
    assert OnnxClassifier.load(tiny_onnx_artifact, info, threads=2).small_session is None
    monkeypatch.setenv("JINGWANG_ORT_SMALL_CALL_THREADS", "1")
    model = OnnxClassifier.load(tiny_onnx_artifact, info, threads=2)
    assert model.small_session is not None
    calls: list[str] = []
    for name in ("session", "small_session"):
        run = getattr(model, name).run
        monkeypatch.setattr(getattr(model, name), "run", lambda *a, _run=run, _name=name: calls.append(_name) or _run(*a))
    one = model.logits(TEXTS[:1])
    many = model.logits(TEXTS)
    assert calls[0] == "small_session" and set(calls[1:]) == {"session"}
    np.testing.assert_allclose(one, many[:1], atol=1e-4)


def test_long_text_is_truncated_to_max_length(tiny_onnx_artifact: Path) -> None:
    model = OnnxClassifier.load(tiny_onnx_artifact, _info(tiny_onnx_artifact))
    assert len(model.tokenizer.encode("代孕" * 500).ids) == model.max_length


@pytest.mark.parametrize("missing_key", ["model_file", "tokenizer", "max_length"])
def test_refuses_artifact_json_without_a_key(tiny_onnx_artifact: Path, missing_key: str) -> None:
    info = _info(tiny_onnx_artifact)
    del info[missing_key]
    with pytest.raises(ArtifactError, match=missing_key):
        OnnxClassifier.load(tiny_onnx_artifact, info)


@pytest.mark.parametrize("missing_file", ["model.onnx", "tokenizer.json"])
def test_refuses_folder_without_a_file(tiny_onnx_artifact: Path, tmp_path: Path, missing_file: str) -> None:
    folder = tmp_path / "artifact"
    shutil.copytree(tiny_onnx_artifact, folder)
    (folder / missing_file).unlink()
    with pytest.raises(ArtifactError, match=missing_file):
        OnnxClassifier.load(folder, _info(tiny_onnx_artifact))


def test_refuses_a_corrupt_graph(tiny_onnx_artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "artifact"
    shutil.copytree(tiny_onnx_artifact, folder)
    (folder / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ArtifactError, match="cannot open"):
        OnnxClassifier.load(folder, _info(folder))


# --- the shipped default model (skipped until an onnx artifact is shipped) -------------------

shipped = pytest.mark.skipif(
    not (SHIPPED / "artifact.json").is_file() or _info(SHIPPED).get("kind") != "onnx"
    if (SHIPPED / "artifact.json").is_file() else True,
    reason="no onnx model shipped in models/artifacts/bert",
)

# (ad, look-alike negative, evasion variant of the ad, label): invented for these tests.
BEHAVIOUR = [
    ("专业代孕机构，包成功包男孩，费用私聊，微信abc_test123",
     "记者调查：代孕黑产链条曝光，专家呼吁加强监管",
     "专业袋孕机构，包成功包男孩，费用私聊，V:abc_test123", "surrogacy"),
    ("高价收购肾脏，配型快，当天见钱，有意者联系138-0000-0000",
     "市人民医院开展器官捐献宣传周活动，欢迎市民登记",
     "高价收购腎臟，配型快，當天見錢，有意者聯繫138-0000-0000", "organ_trade"),
    ("出售刚满月男婴，身体健康，营养费三万，可上门看孩子",
     "出售九成新婴儿床和婴儿推车，宝宝用不上了，同城自提",
     "出 售 刚 满 月 男 婴，身体健康，营 养 费 三 万，可上门看孩子", "child_sale"),
    ("代办出生医学证明，真实可查，可以上户口，价格优惠",
     "孩子的出生医学证明丢了，去妇幼保健院补办需要准备什么材料？",
     "代办chu生医学证明，真实可查，可以上户口，价格优惠", "document_fraud"),
]

# Known failure of the shipped model (README, model card): short questions
# about the legal re-issue (补办) of a birth certificate score as document fraud. Strict, so
# a model that fixes it makes this test fail until the case moves into BEHAVIOUR.
KNOWN_FALSE_POSITIVES = [
    ("出生医学证明遗失了怎么补办？需要带哪些材料去医院", "document_fraud"),
    ("出生医学证明补办流程", "document_fraud"),
]


@pytest.fixture(scope="module")
def shipped_model() -> OnnxClassifier:
    return OnnxClassifier.load(SHIPPED, _info(SHIPPED))


def _score(model: OnnxClassifier, text: str, label: str) -> float:
    from models.normalize import normalize

    return float(model.predict_proba([normalize(text).text])[0, [lab.value for lab in LABELS].index(label)])


@shipped
@pytest.mark.parametrize(("ad", "negative", "evasion", "label"), BEHAVIOUR)
def test_shipped_model_scores_ads_high_and_look_alikes_low(
    shipped_model: OnnxClassifier, ad: str, negative: str, evasion: str, label: str
) -> None:
    review = _info(SHIPPED)["thresholds"][label]["review"]
    assert _score(shipped_model, ad, label) >= review
    assert _score(shipped_model, evasion, label) >= review
    assert _score(shipped_model, negative, label) < review


@shipped
@pytest.mark.xfail(strict=True, reason="known false positive: legal birth-certificate re-issue questions")
@pytest.mark.parametrize(("negative", "label"), KNOWN_FALSE_POSITIVES)
def test_shipped_model_known_false_positive_birth_certificate_reissue(
    shipped_model: OnnxClassifier, negative: str, label: str
) -> None:
    assert _score(shipped_model, negative, label) < _info(SHIPPED)["thresholds"][label]["review"]


@shipped
def test_shipped_int8_agrees_with_fp32_on_decisions() -> None:
    info = _info(SHIPPED)
    if not (SHIPPED / "model.onnx").is_file() or info["model_file"] == "model.onnx":
        pytest.skip("the fp32 graph is not shipped")
    texts = [t for row in BEHAVIOUR for t in row[:3]] + [t for t, _ in POSITIVES] + NEGATIVES
    int8 = OnnxClassifier.load(SHIPPED, info).predict_proba(texts)
    fp32 = OnnxClassifier.load(SHIPPED, {**info, "model_file": "model.onnx"}).predict_proba(texts)
    cut = np.array([info["thresholds"][label.value]["review"] for label in LABELS])
    assert np.mean(((int8 >= cut) == (fp32 >= cut)).all(axis=1)) >= 0.99
