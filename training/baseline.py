"""Train the TF-IDF baseline and save it as a self-describing artifact."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from models.artifact import write_artifact_info
from models.labels import LABELS, TAXONOMY_VERSION, multi_hot
from models.normalize import NORMALIZER_VERSION, normalize
from models.tfidf_model import build_pipeline, drop_pruned_terms
from training.calibrate import calibrate_artifact
from training.dataset import load_jsonl

MODEL_FILE = "model.joblib"


def train_baseline(
    train_file: Path, valid_file: Path, out_dir: Path, *, c: float = 4.0, seed: int = 13
) -> dict[str, Any]:
    """Fit on ``train_file``, tune thresholds on ``valid_file``, write the artifact; return its info."""
    train_rows, valid_rows = load_jsonl(train_file), load_jsonl(valid_file)
    pipeline = build_pipeline(c=c, seed=seed)
    pipeline.fit(
        [normalize(row["text"]).text for row in train_rows],
        np.array(multi_hot([row["labels"] for row in train_rows])),
    )
    drop_pruned_terms(pipeline)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out_dir / MODEL_FILE, compress=3)
    info = {
        "kind": "tfidf",
        "labels": [label.value for label in LABELS],
        "thresholds": {label.value: {"review": 0.5, "block": 0.9} for label in LABELS},  # calibrated below
        "normalizer_version": NORMALIZER_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "lexicon_mode": "max",
        "model_file": MODEL_FILE,
        "base_model": {"name": "tfidf-char1-3+jieba-logreg", "licence": "Apache-2.0"},
        "params": {"C": c, "seed": seed},
        "training_data_sha256": _sha256(train_file, valid_file),
        "training_rows": len(train_rows),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_artifact_info(out_dir, info)
    return calibrate_artifact(out_dir, train_rows, valid_rows)


def _sha256(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()
