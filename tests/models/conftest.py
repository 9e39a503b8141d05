"""Fixtures for the model-backend tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.utils.tiny_bert import tiny_bert_folder


@pytest.fixture(scope="session")
def tiny_onnx_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An onnx artifact folder holding a random-weight tiny classifier (built in seconds)."""
    from models.artifact import write_artifact_info
    from models.labels import LABELS, TAXONOMY_VERSION
    from models.normalize import NORMALIZER_VERSION
    from training.export import export_onnx
    from training.finetune import MultiLabelClassifier, load_encoder

    encoder_dir = tiny_bert_folder(tmp_path_factory.mktemp("tiny_encoder_models"))
    out = tmp_path_factory.mktemp("tiny_onnx")
    model = MultiLabelClassifier(load_encoder(encoder_dir), len(LABELS))
    export_onnx(model, out / "model.onnx", vocab_size=model.encoder.config.vocab_size)
    shutil.copyfile(encoder_dir / "tokenizer.json", out / "tokenizer.json")
    write_artifact_info(out, {
        "kind": "onnx", "labels": [label.value for label in LABELS],
        "thresholds": {label.value: {"review": 0.5, "block": 0.9} for label in LABELS},
        "normalizer_version": NORMALIZER_VERSION, "taxonomy_version": TAXONOMY_VERSION,
        "max_length": 64, "tokenizer": "tokenizer.json", "pad_token_id": 1, "model_file": "model.onnx",
        "base_model": {"name": "tiny", "licence": "Apache-2.0", "source": "tests"},
    })
    return out


def read_info(folder: Path) -> dict:
    return json.loads((folder / "artifact.json").read_text(encoding="utf-8"))
