"""The Screener: decisions from thresholds, lexicon combination, evidence offsets, artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.artifact import Artifact, Thresholds, load_artifact
from models.errors import ArtifactError
from models.labels import LABELS
from models.lexicon import Lexicon
from models.scorer import Screener


class FixedModel:
    """Returns the same probabilities for every text."""

    def __init__(self, row: list[float]) -> None:
        self.row = np.array(row)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.row, (len(texts), 1))


def screener_with(monkeypatch: pytest.MonkeyPatch, row: list[float], **kwargs) -> Screener:
    monkeypatch.setattr(Artifact, "load_model", lambda self: FixedModel(row))
    return Screener.load("lexicon", **kwargs)


def test_lexicon_only_flags_a_clear_ad_and_passes_benign_text() -> None:
    screener = Screener.load("lexicon")
    ad, benign = screener.screen(["高价收肾，O型优先，配型快，价格面议", "今天去公园散步，天气很好"])
    assert ad.decision in {"review", "block"}
    assert "organ_trade" in ad.labels
    assert benign.decision == "pass" and benign.labels == [] and benign.evidence == []


def test_evidence_spans_point_into_the_original_text() -> None:
    text = "招 代 孕 妈 妈，包成功，月入两万"
    (result,) = Screener.load("lexicon").screen([text])
    assert result.evidence
    for evidence in result.evidence:
        assert 0 <= evidence.start < evidence.end <= len(text)
        assert text[evidence.start : evidence.end] == evidence.text


def test_empty_and_whitespace_text_pass_with_zero_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    screener = screener_with(monkeypatch, [0.99] * len(LABELS))
    for result in screener.screen(["", "   \n"]):
        assert result.decision == "pass"
        assert set(result.scores.values()) == {0.0}


@pytest.mark.parametrize(
    ("score", "decision"),
    [(0.1, "pass"), (0.5, "review"), (0.69, "review"), (0.7, "block"), (0.95, "block")],
)
def test_decision_follows_per_label_thresholds(
    monkeypatch: pytest.MonkeyPatch, score: float, decision: str
) -> None:
    row = [0.0] * len(LABELS)
    row[LABELS.index("surrogacy")] = score
    thresholds = {label.value: Thresholds(0.5, 0.7) for label in LABELS}
    screener = screener_with(monkeypatch, row, thresholds=thresholds, lexicon_mode="evidence")
    (result,) = screener.screen(["随便一句话"])
    assert result.decision == decision
    assert result.labels == (["surrogacy"] if score >= 0.5 else [])
    assert result.scores["surrogacy"] == pytest.approx(score)


def test_max_mode_lets_a_strong_rule_raise_a_low_model_score(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "高价收肾，O型优先，配型快，价格面议"
    evidence_only = screener_with(monkeypatch, [0.0] * len(LABELS), lexicon_mode="evidence")
    combined = screener_with(monkeypatch, [0.0] * len(LABELS), lexicon_mode="max")
    (plain,) = evidence_only.screen([text])
    (boosted,) = combined.screen([text])
    assert plain.scores["organ_trade"] == 0.0 and plain.evidence  # hits still reported
    assert boosted.scores["organ_trade"] > 0.5


def test_unknown_lexicon_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="lexicon_mode"):
        screener_with(monkeypatch, [0.0] * len(LABELS), lexicon_mode="sometimes")


def test_to_dict_has_the_scan_output_shape() -> None:
    (result,) = Screener.load("lexicon").screen(["高价收肾，配型快"])
    out = result.to_dict()
    assert set(out) == {"decision", "labels", "scores", "evidence"}
    assert set(out["scores"]) == {label.value for label in LABELS}
    assert all(set(e) == {"label", "start", "end", "text", "source"} for e in out["evidence"])
    json.dumps(out, ensure_ascii=False)


def test_a_span_two_rules_hit_is_one_piece_of_evidence() -> None:
    text = "天天加班，工资三千五，我真的要去卖肾了"
    hits = Lexicon.load().scan(text)
    spans = [(h.label.value, h.start, h.end) for h in hits]
    assert len(spans) > len(set(spans))  # two organ-trade rules both hit 卖肾
    (result,) = Screener.load("lexicon").screen([text])
    assert sorted((e.label, e.start, e.end) for e in result.evidence) == sorted(set(spans))


def test_tenant_lexicon_applies_per_call() -> None:
    screener = Screener.load("lexicon")
    text = "本店长期收购新鲜火星果，价格私聊"
    custom = screener.lexicon.with_terms(block={LABELS[5]: ["火星果"]})
    (default,) = screener.screen([text])
    (tenant,) = screener.screen([text], lexicon=custom)
    assert not any(e.text == "火星果" for e in default.evidence)
    assert any(e.text == "火星果" and e.label == "organ_trade" for e in tenant.evidence)


def test_baseline_artifact_scores_like_its_training_data(tiny_baseline: Path) -> None:
    screener = Screener.load(tiny_baseline, lexicon_mode="evidence")
    ad, benign = screener.screen(["出售健康男婴一名，三个月大，价格面议", "今天天气真好，适合出去散步"])
    assert ad.scores["child_sale"] > benign.scores["child_sale"]
    assert screener.info["kind"] == "tfidf"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda info: info.pop("thresholds"), "lacks thresholds"),
        (lambda info: info.pop("model_file"), "lacks model_file"),
        (lambda info: info.update(labels=["trafficking"]), "differ from this taxonomy"),
        (lambda info: info.update(kind="magic"), "unknown kind"),
        (lambda info: info.update(model_file="gone.joblib"), "missing from the folder"),
    ],
)
def test_incomplete_artifacts_are_refused_with_a_clear_message(
    tiny_baseline: Path, tmp_path: Path, edit, message: str
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_baseline, broken)
    info = json.loads((broken / "artifact.json").read_text(encoding="utf-8"))
    edit(info)
    (broken / "artifact.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(ArtifactError, match=message):
        load_artifact(broken)


def test_a_folder_without_artifact_json_names_the_shipped_models(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="lexicon"):
        load_artifact(tmp_path)


def test_ensemble_averages_its_members(tiny_splits: dict[str, Path], tiny_baseline: Path, tmp_path: Path) -> None:
    from training.dataset import load_jsonl
    from training.ensemble import build_ensemble

    out = tmp_path / "ensemble"
    info = build_ensemble(
        {"a": tiny_baseline, "b": tiny_baseline}, out,
        load_jsonl(tiny_splits["train"]), load_jsonl(tiny_splits["valid"]),
    )
    assert info["kind"] == "ensemble" and sum(m["weight"] for m in info["members"]) == pytest.approx(1.0)
    texts = ["出售健康男婴一名，三个月大，价格面议", "今天天气真好，适合出去散步"]
    member_scores, _ = Screener.load(tiny_baseline, lexicon_mode="evidence").score(texts)
    ensemble_scores, _ = Screener.load(out, lexicon_mode="evidence").score(texts)
    np.testing.assert_allclose(ensemble_scores, member_scores, atol=1e-9)  # identical members


def test_an_ensemble_with_a_missing_member_is_refused(tiny_baseline: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ens"
    folder.mkdir()
    info = json.loads((tiny_baseline / "artifact.json").read_text(encoding="utf-8"))
    info.update(kind="ensemble", members=[{"path": "gone", "weight": 1.0}])
    del info["model_file"]
    (folder / "artifact.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(ArtifactError, match="member 'gone' is missing"):
        load_artifact(folder)


def test_an_ensemble_refuses_a_member_retrained_after_calibration(
    tiny_splits: dict[str, Path], tiny_baseline: Path, tmp_path: Path
) -> None:
    from training.dataset import load_jsonl
    from training.ensemble import build_ensemble

    member = tmp_path / "member"
    shutil.copytree(tiny_baseline, member)
    out = tmp_path / "ensemble"
    build_ensemble(
        {"a": member, "b": tiny_baseline}, out,
        load_jsonl(tiny_splits["train"]), load_jsonl(tiny_splits["valid"]),
    )
    info = json.loads((member / "artifact.json").read_text(encoding="utf-8"))
    info["created"] = "later"
    (member / "artifact.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(ArtifactError, match="changed since this ensemble was calibrated"):
        Screener.load(out)


@pytest.mark.parametrize("mode", ["max", "evidence"])
def test_an_ensemble_can_fix_its_lexicon_mode(
    tiny_splits: dict[str, Path], tiny_baseline: Path, tmp_path: Path, mode: str
) -> None:
    from training.dataset import load_jsonl
    from training.ensemble import build_ensemble

    info = build_ensemble(
        {"a": tiny_baseline, "b": tiny_baseline}, tmp_path / "ensemble",
        load_jsonl(tiny_splits["train"]), load_jsonl(tiny_splits["valid"]), lexicon_mode=mode,
    )
    assert info["lexicon_mode"] == mode
    assert Screener.load(tmp_path / "ensemble").lexicon_mode == mode


def test_an_ensemble_can_fix_its_weights(tiny_splits: dict[str, Path], tiny_baseline: Path, tmp_path: Path) -> None:
    from training.dataset import load_jsonl
    from training.ensemble import build_ensemble

    train, valid = load_jsonl(tiny_splits["train"]), load_jsonl(tiny_splits["valid"])
    info = build_ensemble({"a": tiny_baseline, "b": tiny_baseline}, tmp_path / "ensemble", train, valid,
                          weights=[0.7, 0.3])
    assert [m["weight"] for m in info["members"]] == [0.7, 0.3]
    with pytest.raises(ValueError, match="summing to 1"):
        build_ensemble({"a": tiny_baseline, "b": tiny_baseline}, tmp_path / "bad", train, valid, weights=[0.7, 0.7])
