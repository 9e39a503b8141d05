"""Calibration after training: lexicon rule weights and per-label thresholds.

Both are tuned on the training data's own splits, never on the dev set, and stored in the
artifact (``rule_weights``, ``thresholds``), so a model folder says how it decides.

- Rule weights: a rule's weight in the term files is an expert's guess. Before a rule may
  raise a label's score on its own (the scorer's ``max`` mode), the guess is capped by how
  precise the rule is on the training split: the lower bound of a Wilson interval on the
  share of its hits that carry its label. Rules that fire on news or policy lose their
  pull; their hits stay as evidence.
- Lexicon mode and thresholds: for each mode (``max``, ``evidence``; see `models.scorer`)
  thresholds are tuned on the validation split on the scores the scorer will really
  produce; the mode with the better validation macro-F1 is kept (``evidence`` on a tie:
  the model alone decides, the lexicon still explains).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import write_artifact_info
from models.labels import multi_hot
from models.lexicon import Lexicon
from training.thresholds import tune_thresholds


def calibrate_artifact(
    artifact_dir: Path,
    train_rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    *,
    lexicon_mode: str | None = None,
) -> dict[str, Any]:
    """Add calibrated ``rule_weights``, ``lexicon_mode`` and ``thresholds``; return the info.

    ``lexicon_mode`` fixes the mode instead of choosing it on the validation split."""
    from models.scorer import Screener

    info = json.loads((artifact_dir / "artifact.json").read_text(encoding="utf-8"))
    info["rule_weights"] = calibrate_rule_weights(Lexicon.load(), train_rows)
    write_artifact_info(artifact_dir, info)
    screener = Screener.load(artifact_dir)
    texts = [row["text"] for row in valid_rows]
    truth = np.array(multi_hot([row["labels"] for row in valid_rows]))
    best: tuple[float, str, dict] | None = None
    for mode in (lexicon_mode,) if lexicon_mode else ("evidence", "max"):
        screener.lexicon_mode = mode
        scores, _ = screener.score(texts)
        thresholds = tune_thresholds(truth, scores)
        f1 = macro_f1(truth, scores, thresholds)
        if best is None or f1 > best[0] + 1e-9:
            best = (f1, mode, thresholds)
    f1, info["lexicon_mode"], thresholds = best
    info["thresholds"] = {k: {"review": t.review, "block": t.block} for k, t in thresholds.items()}
    info.setdefault("metrics", {})["valid_macro_f1"] = round(f1, 4)
    write_artifact_info(artifact_dir, info)
    return info


def macro_f1(truth: np.ndarray, scores: np.ndarray, thresholds: dict) -> float:
    """Macro-F1 of ``scores`` at the review thresholds (columns in `LABELS` order)."""
    f1s = []
    for column, t in enumerate(thresholds.values()):
        predicted, actual = scores[:, column] >= t.review, truth[:, column].astype(bool)
        tp = np.sum(predicted & actual)
        denominator = predicted.sum() + actual.sum()
        f1s.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1s))


def calibrate_rule_weights(
    lexicon: Lexicon, rows: Iterable[dict[str, Any]], *, min_hits: int = 3, z: float = 1.64
) -> dict[str, float]:
    """``{rule_id: weight}`` for every rule that fired at least ``min_hits`` times on ``rows``."""
    hits: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    file_weight: dict[str, float] = {}
    for row in rows:
        truth = set(row["labels"])
        # a rule counts once per text, however often it matches there
        for hit in {h.rule_id: h for h in lexicon.scan(row["text"])}.values():
            hits[hit.rule_id] += 1
            correct[hit.rule_id] += hit.label.value in truth
            file_weight[hit.rule_id] = hit.weight
    return {
        rule: round(min(file_weight[rule], _wilson_lower(correct[rule], n, z)), 4)
        for rule, n in sorted(hits.items())
        if n >= min_hits
    }


def _wilson_lower(successes: int, n: int, z: float) -> float:
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))
