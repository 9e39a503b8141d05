"""The TF-IDF + logistic-regression backend (the baseline artifact's model).

Features are character 1–3-grams plus jieba words of the normalised text. The fitted
scikit-learn pipeline is stored with joblib: load only artifacts you trust (pickle).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jieba
import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline

jieba.setLogLevel(logging.WARNING)


def jieba_words(text: str) -> list[str]:
    """jieba tokens without whitespace; module-level so the fitted pipeline pickles."""
    return [word for word in jieba.lcut(text) if word.strip()]


def build_pipeline(
    *, c: float = 4.0, seed: int = 13, max_char_features: int = 60_000, max_word_features: int = 30_000
) -> Pipeline:
    """An unfitted baseline pipeline (vocabularies capped so the artifact stays a few MB)."""
    features = FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                    max_features=max_char_features,
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    tokenizer=jieba_words, token_pattern=None, lowercase=False, min_df=2,
                    sublinear_tf=True, max_features=max_word_features,
                ),
            ),
        ]
    )
    classifier = OneVsRestClassifier(
        LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def drop_pruned_terms(pipeline: Pipeline) -> None:
    """Forget the terms the vocabulary caps pruned: only needed for introspection, large to pickle."""
    for _, vectorizer in pipeline.named_steps["features"].transformer_list:
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_


class TfidfClassifier:
    """Loads a fitted pipeline and returns per-label probabilities."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @classmethod
    def load(cls, directory: Path, info: dict[str, Any]) -> TfidfClassifier:
        return cls(joblib.load(directory / info["model_file"]))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)
