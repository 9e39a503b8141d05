"""Metrics computed by `training.evaluate` on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from models.artifact import Artifact
from models.labels import LABELS
from models.scorer import Screener
from training.evaluate import evaluate, worst_errors
from training.thresholds import tune_thresholds


class ByTextModel:
    """Scores surrogacy 0.9 when the text contains 'ad', else 0."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(LABELS)))
        out[:, LABELS.index("surrogacy")] = [0.9 if "ad" in t else 0.0 for t in texts]
        return out


@pytest.fixture
def screener(monkeypatch: pytest.MonkeyPatch) -> Screener:
    monkeypatch.setattr(Artifact, "load_model", lambda self: ByTextModel())
    return Screener.load("lexicon", lexicon_mode="evidence")


def test_metrics_on_a_hand_counted_set(screener: Screener) -> None:
    rows = [
        {"id": "1", "text": "ad one", "labels": ["surrogacy"], "kind": "positive"},
        {"id": "2", "text": "ad two", "labels": ["surrogacy"], "kind": "evasion"},
        {"id": "3", "text": "missed", "labels": ["surrogacy"], "kind": "evasion"},
        {"id": "4", "text": "ad news", "labels": [], "kind": "hard_negative"},
        {"id": "5", "text": "news", "labels": [], "kind": "hard_negative"},
    ]
    m = evaluate(screener, rows)["metrics"]
    surrogacy = m["per_label"]["surrogacy"]
    assert surrogacy["precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert surrogacy["recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert m["evasion_recall"] == pytest.approx(0.5)
    assert m["hard_negative_fpr"] == pytest.approx(0.5)
    assert m["per_label"]["organ_trade"]["f1"] == 0.0


def test_worst_errors_rank_by_score(screener: Screener) -> None:
    rows = [
        {"id": "fp", "text": "ad", "labels": [], "kind": "hard_negative"},
        {"id": "fn", "text": "x", "labels": ["surrogacy"], "kind": "positive"},
    ]
    errors = worst_errors(evaluate(screener, rows)["predictions"])
    assert [e["id"] for e in errors["false_positives"]] == ["fp"]
    assert [e["id"] for e in errors["false_negatives"]] == ["fn"]


def test_thresholds_separate_a_separable_label() -> None:
    truth = np.zeros((6, len(LABELS)))
    truth[:3, 0] = 1
    score = np.zeros((6, len(LABELS)))
    score[:, 0] = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
    t = tune_thresholds(truth, score)["trafficking"]
    assert 0.3 < t.review <= 0.7 and t.review <= t.block <= 1.0
