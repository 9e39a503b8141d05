"""Combine trained artifacts into one ensemble artifact, weights chosen on the validation split."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import load_artifact, write_artifact_info
from models.ensemble import member_digest
from models.labels import LABELS, TAXONOMY_VERSION, multi_hot
from models.normalize import NORMALIZER_VERSION
from models.scorer import Screener
from training.calibrate import calibrate_artifact, macro_f1
from training.thresholds import tune_thresholds

WEIGHT_STEP = 0.1


def build_ensemble(
    members: dict[str, Path],
    out_dir: Path,
    train_rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    *,
    lexicon_mode: str | None = None,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Write an ensemble of ``members`` (name → artifact folder) into ``out_dir``.

    Members stay where they are and are referenced by relative path with the sha256 of
    their ``artifact.json``, so a member retrained later is refused instead of silently
    mixed with weights tuned for its predecessor.

    Every weighting on a 0.1 grid is scored by validation macro-F1 at thresholds tuned for
    it; the best is kept (``weights``, one per member in order, fixes them instead), then rule
    weights, lexicon mode (unless ``lexicon_mode`` fixes it) and thresholds are calibrated for
    the ensemble as a whole (`training.calibrate`).
    """
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    if weights is not None:
        if len(weights) != len(members) or min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
            raise ValueError(f"weights must be one non-negative number per member summing to 1, got {list(weights)}")
        best_weights = tuple(weights)
    else:
        best_weights = _best_weights(members, valid_rows)

    out_dir.mkdir(parents=True, exist_ok=True)
    infos = {name: load_artifact(path).info for name, path in members.items()}
    info = {
        "kind": "ensemble",
        "labels": [label.value for label in LABELS],
        "thresholds": {label.value: {"review": 0.5, "block": 0.9} for label in LABELS},
        "normalizer_version": NORMALIZER_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "members": [
            {
                "name": name,
                "path": os.path.relpath(path.resolve(), out_dir.resolve()),
                "weight": round(w, 4),
                "sha256": member_digest(path),
            }
            for (name, path), w in zip(members.items(), best_weights, strict=True)
        ],
        "base_model": {
            "name": " + ".join(f"{infos[n].get('base_model', {}).get('name', n)}" for n in members),
            "licence": ", ".join(sorted({infos[n].get("base_model", {}).get("licence", "?") for n in members})),
        },
        "training_data_sha256": hashlib.sha256(
            "".join(infos[n].get("training_data_sha256", "") for n in members).encode()
        ).hexdigest(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_artifact_info(out_dir, info)
    return calibrate_artifact(out_dir, train_rows, valid_rows, lexicon_mode=lexicon_mode)


def _best_weights(members: dict[str, Path], valid_rows: list[dict[str, Any]]) -> tuple[float, ...]:
    """The weighting on the grid with the best validation macro-F1 at its own thresholds."""
    texts = [row["text"] for row in valid_rows]
    truth = np.array(multi_hot([row["labels"] for row in valid_rows]))
    member_scores = [
        Screener.load(path, lexicon_mode="evidence").score(texts)[0] for path in members.values()
    ]
    best_f1, best_weights = -1.0, ()
    for weights in _weight_grid(len(members)):
        scores = sum(w * s for w, s in zip(weights, member_scores, strict=True))
        f1 = macro_f1(truth, scores, tune_thresholds(truth, scores))
        if f1 > best_f1 + 1e-9:
            best_f1, best_weights = f1, weights
    return best_weights


def _weight_grid(n: int) -> list[tuple[float, ...]]:
    steps = round(1 / WEIGHT_STEP)
    return [
        tuple(k / steps for k in combo)
        for combo in itertools.product(range(steps + 1), repeat=n)
        if sum(combo) == steps
    ]
