"""The TF-IDF + logistic-regression backend (the baseline artifact's model).

Features are character 1–3-grams plus jieba words of the normalised text. The fitted
scikit-learn pipeline is stored with joblib: load only artifacts you trust (pickle).

Scoring does not go through ``Pipeline.predict_proba``: for a short post, scikit-learn's
per-call validation and the six one-vs-rest estimators cost ~2.5 ms, ten times the
arithmetic. The fitted vocabularies, idf weights and coefficients are read out once at
load time and applied directly (same numbers, checked against the pipeline by a test).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jieba
import joblib
import numpy as np
import scipy.sparse as sp
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


class _Features:
    """One fitted TfidfVectorizer reduced to what transform needs."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        if vectorizer.norm not in ("l2", None) or vectorizer.binary or not vectorizer.use_idf:
            raise ValueError("unsupported TfidfVectorizer settings")
        self.analyze: Callable[[str], list[str]] = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.sublinear = bool(vectorizer.sublinear_tf)
        self.l2 = vectorizer.norm == "l2"

    def counts(self, text: str) -> Counter[int | None]:
        """Vocabulary column -> count for one text (tokens outside the vocabulary dropped)."""
        counts = Counter(map(self.vocabulary.get, self.analyze(text)))
        counts.pop(None, None)
        return counts


class TfidfClassifier:
    """Loads a fitted pipeline and returns per-label probabilities."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._features: list[_Features] | None = None
        try:
            self._features = [_Features(v) for _, v in pipeline.named_steps["features"].transformer_list]
            estimators = pipeline.named_steps["classifier"].estimators_
            # (features, labels): one binary logistic regression per label.
            self._coef = np.vstack([e.coef_ for e in estimators]).T.copy()
            self._intercept = np.array([float(e.intercept_[0]) for e in estimators])
        except (AttributeError, KeyError, TypeError, ValueError):
            self._features = None  # another pipeline shape: let scikit-learn score it
            return
        sizes = [len(f.vocabulary) for f in self._features]
        self._offsets = np.cumsum([0, *sizes[:-1]]).tolist()
        self._idf = np.concatenate([f.idf for f in self._features])
        self._sublinear = np.concatenate([np.full(n, f.sublinear) for f, n in zip(self._features, sizes, strict=True)])
        self._l2 = np.array([f.l2 for f in self._features])

    @classmethod
    def load(cls, directory: Path, info: dict[str, Any]) -> TfidfClassifier:
        return cls(joblib.load(directory / info["model_file"]))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self._features is None:
            return np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)
        # One segment per (text, vectorizer): tf-idf values, each segment L2-normalised on its own.
        columns: list[int] = []
        tf: list[int] = []
        lengths: list[int] = []
        for text in texts:
            for features, offset in zip(self._features, self._offsets, strict=True):
                counts = features.counts(text)
                columns.extend(column + offset for column in counts)
                tf.extend(counts.values())
                lengths.append(len(counts))
        column = np.asarray(columns, dtype=np.int64)
        term_frequency = np.asarray(tf, dtype=np.float64)
        values = np.where(self._sublinear[column], np.log(np.maximum(term_frequency, 1.0)) + 1.0, term_frequency)
        values *= self._idf[column]
        segment = np.repeat(np.arange(len(lengths)), lengths)
        norms = np.sqrt(np.bincount(segment, weights=values * values, minlength=len(lengths)))
        # An empty segment has norm 0 and no values to scale.
        scale = np.where(np.tile(self._l2, len(texts)), 1.0 / np.where(norms > 0, norms, 1.0), 1.0)
        values *= scale[segment]
        per_text = np.asarray(lengths, dtype=np.int64).reshape(len(texts), len(self._features)).sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(per_text)])
        matrix = sp.csr_matrix((values, column, indptr), shape=(len(texts), len(self._idf)))
        logits = matrix @ self._coef + self._intercept
        return 1.0 / (1.0 + np.exp(-logits))
