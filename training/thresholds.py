"""Per-label review and block thresholds, tuned on the validation split (never on the dev set)."""

from __future__ import annotations

import numpy as np

from models.artifact import Thresholds
from models.labels import LABELS


def tune_thresholds(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    block_precision: float = 0.97,
    min_review: float = 0.2,
) -> dict[str, Thresholds]:
    """Pick each label's review threshold at best F1 and its block threshold at high precision.

    ``y_true`` and ``y_score`` have shape (n, len(LABELS)). The review threshold is the score
    that maximises F1 (ties go to the lower threshold, favouring recall: a human reviews
    it); it is kept at or above ``min_review`` so a thin validation split cannot make every
    item reviewable. The block threshold is the lowest score at which validation precision
    reaches ``block_precision``, or halfway between review and 1 when it never does.
    """
    thresholds = {}
    for column, label in enumerate(LABELS):
        truth, score = y_true[:, column].astype(bool), y_score[:, column]
        review = max(_best_f1_threshold(truth, score), min_review)
        block = _precision_threshold(truth, score, block_precision, floor=review)
        thresholds[label.value] = Thresholds(round(review, 4), round(block, 4))
    return thresholds


def _best_f1_threshold(truth: np.ndarray, score: np.ndarray) -> float:
    if not truth.any():
        return 0.5
    candidates = np.unique(score)
    best, best_f1 = 0.5, -1.0
    for t in candidates:
        predicted = score >= t
        tp = np.sum(predicted & truth)
        f1 = 2 * tp / (predicted.sum() + truth.sum())
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(t), f1
    return best


def _precision_threshold(truth: np.ndarray, score: np.ndarray, target: float, *, floor: float) -> float:
    for t in np.unique(score[score >= floor]):
        predicted = score >= t
        if predicted.sum() and np.sum(predicted & truth) / predicted.sum() >= target:
            return max(float(t), floor)
    return floor + (1.0 - floor) / 2
